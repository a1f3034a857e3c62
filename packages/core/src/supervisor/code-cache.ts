import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire, wrap } from 'node:module'
import { dirname, join } from 'node:path'
import { Script } from 'node:vm'

/** How many supervisor code caches stay in the cache directory (~0.4 MB each). */
const KEPT_CACHES = 4

/** A CommonJS file loaded through V8's code cache; `save()` keeps what was compiled so far. */
export interface CodeCached<T> {
  exports: T
  /** Writes the cache (once, when there was none or V8 refused it); never throws. */
  save(): void
}

/**
 * Loads the CommonJS bundle `file` (the supervisor's, which every VM.up() starts) with V8's code
 * cache from `cacheDir/code-cache`: compiling its ~0.8 MB takes about half of its ~70 ms of load
 * CPU, and Node 20 has no compile cache of its own (`module.enableCompileCache` is 22.1+). The
 * cache is named by the Node version and the file's size and mtime, and V8 checks it against the
 * source and its own flags anyway (a mismatch is refused and the file compiled as usual). Saved
 * after a VM became ready, so that it holds the functions a boot compiles, not only the top level.
 */
export function requireWithCodeCache<T>(file: string, cacheDir: string): CodeCached<T> {
  const stat = statSync(file)
  const dir = join(cacheDir, 'code-cache')
  const prefix = 'supervisor-'
  const path = join(
    dir,
    `${prefix}${process.version}-${process.arch}-${stat.size}-${Math.round(stat.mtimeMs)}.bin`,
  )
  let cachedData: Buffer | undefined
  try {
    cachedData = readFileSync(path)
  } catch {}
  const script = new Script(wrap(readFileSync(file, 'utf8')), { filename: file, cachedData })
  const module = { exports: {} as T }
  const run = script.runInThisContext() as (...args: unknown[]) => void
  run.call(module.exports, module.exports, createRequire(file), module, file, dirname(file))
  let saved = cachedData !== undefined && !script.cachedDataRejected
  return {
    exports: module.exports,
    save() {
      if (saved) return
      saved = true
      try {
        mkdirSync(dir, { recursive: true })
        const temporary = `${path}.${process.pid}.tmp`
        writeFileSync(temporary, script.createCachedData())
        renameSync(temporary, path)
        // Other builds' and Node versions' caches: the newest few stay (several checkouts of vmctl
        // may share one cache), the rest go; one that is gone is remade on its next use.
        const others = readdirSync(dir)
          .filter((name) => name.startsWith(prefix) && name.endsWith('.bin') && join(dir, name) !== path)
          .map((name) => ({ name, at: statSync(join(dir, name)).mtimeMs }))
          .sort((a, b) => b.at - a.at)
        for (const { name } of others.slice(KEPT_CACHES - 1)) rmSync(join(dir, name), { force: true })
      } catch {} // a read-only or full cache: compiled again next time
    },
  }
}
