import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
// The default export: an ES module (the CLI's main.ts imports this) sees no named `wrap`.
import Module from 'node:module'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { Script } from 'node:vm'

/**
 * The cache directory as paths.ts's cacheDir() computes it from the same environment (inlined: this
 * runs before the supervisor's or the CLI's modules are loaded): where the code cache is, before launch.json
 * says. A wrong guess costs a code cache miss, nothing else.
 */
export function cacheDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  if (env.VMCTL_CACHE_DIR) return env.VMCTL_CACHE_DIR
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vmctl')
}

/** A byte that may end an identifier (or a member access: `x.import(` is a method call). */
function endsName(byte: number | undefined): boolean {
  if (byte === undefined) return false
  return /[\w$.]/.test(String.fromCharCode(byte)) || byte >= 0x80
}

/**
 * Where `source` has a dynamic `import(`, or -1: the one test both for skipping the code cache
 * (requireWithCodeCache) and for the bundle scripts that refuse one at build time (bundle-cli.mjs,
 * bundle-supervisor.mjs), so that a file the build let through is never one the cache skips.
 * `_import(`, `reimport(`, `x.import(` are calls, not dynamic imports. A byte search (memmem): the
 * CLI's and the supervisor's bundles are ~0.4-0.8 MB, read on every start.
 */
export function dynamicImportAt(source: Buffer): number {
  for (let at = source.indexOf('import('); at >= 0; at = source.indexOf('import(', at + 1))
    if (!endsName(source[at - 1])) return at
  return -1
}

/** How many supervisor code caches stay in the cache directory (~0.4 MB each). */
const KEPT_CACHES = 4

/** A CommonJS file loaded through V8's code cache; `save()` keeps what was compiled so far. */
export interface CodeCached<T> {
  exports: T
  /** Writes the cache (once, when there was none or V8 refused it); never throws. */
  save(): void
}

/**
 * Loads the CommonJS bundle `file` (the supervisor's, which every VM.up() starts; the `vmctl`
 * command's, `name` 'cli', through `@vmctl/core/code-cache`) with V8's code
 * cache from `cacheDir/code-cache`: compiling its ~0.8 MB takes about half of its ~70 ms of load
 * CPU, and Node 20 has no compile cache of its own (`module.enableCompileCache` is 22.1+). The
 * cache is named by the Node version, the arch and a hash of the file's bytes: V8 checks a cache
 * only against the source's length (and its own version and flags), so a cache named by size and
 * mtime alone ran the old compiled code for a changed file of the same size (npm installs carry a
 * fixed mtime). Saved after a VM became ready, so that it holds the functions a boot compiles, not
 * only the top level.
 */
export function requireWithCodeCache<T>(file: string, cacheDir: string, name = 'supervisor'): CodeCached<T> {
  const source = readFileSync(file)
  // Node 20's V8 drops a script's dynamic-import callback once the script comes from a code cache
  // (USE_MAIN_CONTEXT_DEFAULT_LOADER does not help): an import() anywhere in it fails with
  // ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING on every run after the one that wrote the cache. The
  // CLI's bundle does its imports through a file of its own (bundle-cli.mjs, whose build refuses an
  // import() in the bundle); a file with one is loaded as any CommonJS file, without a cache.
  if (dynamicImportAt(source) >= 0) {
    return { exports: Module.createRequire(file)(file) as T, save() {} }
  }
  const dir = join(cacheDir, 'code-cache')
  const prefix = `${name}-`
  // sha1 of the ~0.8 MB: ~1-2 ms. Not a security boundary: whoever can write the cache can write the bundle.
  const hash = createHash('sha1').update(source).digest('hex').slice(0, 20)
  const path = join(dir, `${prefix}${process.version}-${process.arch}-${hash}.bin`)
  // VMCTL_CODE_CACHE=0: compiled from source every time, nothing written (a bench's A/B).
  const off = process.env.VMCTL_CODE_CACHE === '0'
  let cachedData: Buffer | undefined
  try {
    if (!off) cachedData = checkedPayload(readFileSync(path))
  } catch {}
  const script = new Script(Module.wrap(source.toString('utf8')), {
    filename: file,
    cachedData,
  })
  const module = { exports: {} as T }
  const run = script.runInThisContext() as (...args: unknown[]) => void
  run.call(module.exports, module.exports, Module.createRequire(file), module, file, dirname(file))
  let saved = off || (cachedData !== undefined && !script.cachedDataRejected)
  return {
    exports: module.exports,
    save() {
      if (saved) return
      saved = true
      try {
        mkdirSync(dir, { recursive: true })
        const temporary = `${path}.${process.pid}.tmp`
        const payload = script.createCachedData()
        writeFileSync(temporary, Buffer.concat([digest(payload), payload]))
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

/**
 * A cache file is a sha1 of its payload, then the payload; a file whose payload does not match is no
 * cache. V8 checks a cache's header (its version, flags, the source's length) but not the payload
 * in release builds: a payload damaged past the header (a bad block, a rename that outlived a power
 * loss without its data) aborts the process in V8's deserializer (exit 133), before any JavaScript
 * can catch it, in every process that loads it, and the file's name never changes: every `vmctl`
 * command and every supervisor died until someone deleted the cache by hand. ~1 ms per load.
 */
function checkedPayload(file: Buffer): Buffer | undefined {
  const payload = file.subarray(DIGEST_BYTES)
  return file.length > DIGEST_BYTES && digest(payload).equals(file.subarray(0, DIGEST_BYTES))
    ? payload
    : undefined
}

const DIGEST_BYTES = 20

function digest(payload: Buffer): Buffer {
  return createHash('sha1').update(payload).digest()
}
