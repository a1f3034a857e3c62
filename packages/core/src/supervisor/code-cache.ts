import { createHash } from 'node:crypto'
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
 * cache is named by the Node version, the arch and a hash of the file's bytes: V8 checks a cache
 * only against the source's length (and its own version and flags), so a cache named by size and
 * mtime alone ran the old compiled code for a changed file of the same size (npm installs carry a
 * fixed mtime). Saved after a VM became ready, so that it holds the functions a boot compiles, not
 * only the top level.
 */
export function requireWithCodeCache<T>(file: string, cacheDir: string): CodeCached<T> {
  const source = readFileSync(file)
  const dir = join(cacheDir, 'code-cache')
  const prefix = 'supervisor-'
  // sha1 of the ~0.8 MB: ~1-2 ms. Not a security boundary: whoever can write the cache can write the bundle.
  const hash = createHash('sha1').update(source).digest('hex').slice(0, 20)
  const path = join(dir, `${prefix}${process.version}-${process.arch}-${hash}.bin`)
  let cachedData: Buffer | undefined
  try {
    cachedData = readFileSync(path)
  } catch {}
  const script = new Script(wrap(source.toString('utf8')), { filename: file, cachedData })
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
        // A `.tmp` left by a supervisor killed between the write and the rename goes with them.
        const others = readdirSync(dir)
          .filter((name) => name.startsWith(prefix) && /\.(bin|tmp)$/.test(name) && join(dir, name) !== path)
          .map((name) => ({ name, at: statSync(join(dir, name)).mtimeMs }))
          .sort((a, b) => b.at - a.at)
        for (const { name } of others.slice(KEPT_CACHES - 1)) rmSync(join(dir, name), { force: true })
      } catch {} // a read-only or full cache: compiled again next time
    },
  }
}
