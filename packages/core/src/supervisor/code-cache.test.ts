import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'
import { runCommand } from '../test-support/run-command.js'
import { dynamicImportAt, requireWithCodeCache } from './code-cache.js'

const dir = mkdtempSync(join(tmpdir(), 'vmctl-code-cache-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('the supervisor bundle through a code cache', () => {
  test('a changed file of the same size and mtime runs its own code, not the cached one', () => {
    const file = join(dir, 'bundle.cjs')
    const cacheDir = join(dir, 'cache')
    // Compiled eagerly and called, so that the cache holds the function's code, as after a boot.
    const source = (version: string) => `exports.version = function version() { return '${version}' }\n`
    writeFileSync(file, source('0.4.1'))
    const { mtime } = statSync(file)
    const first = requireWithCodeCache<{ version: () => string }>(file, cacheDir)
    expect(first.exports.version()).toBe('0.4.1')
    first.save()
    expect(readdirSync(join(cacheDir, 'code-cache')).filter((name) => name.endsWith('.bin'))).toHaveLength(1)

    // A release whose bundle differs by one digit: same length, and npm's fixed mtime.
    writeFileSync(file, source('0.4.2'))
    utimesSync(file, mtime, mtime)
    const second = requireWithCodeCache<{ version: () => string }>(file, cacheDir)
    expect(second.exports.version()).toBe('0.4.2')
  })
  test('a file with an import() still imports in the process after the one that saved a cache', async () => {
    // Two Node processes, as two vmctl commands: the built module, since the failure is V8's
    // (functions deserialized from a cache lose the dynamic-import callback) and shows only there.
    const file = join(dir, 'lazy.cjs')
    const cacheDir = join(dir, 'cache-lazy')
    writeFileSync(file, "exports.platform = async () => (await import('node:os')).platform()\n")
    const built = fileURLToPath(new URL('../../dist/supervisor/code-cache.js', import.meta.url))
    const script = `import { requireWithCodeCache } from ${JSON.stringify(built)}
const loaded = requireWithCodeCache(${JSON.stringify(file)}, ${JSON.stringify(cacheDir)}, 'lazy')
console.log(await loaded.exports.platform()); loaded.save()`
    for (let run = 0; run < 2; run++) {
      const result = await runCommand(process.execPath, [
        '--no-warnings',
        '--input-type=module',
        '-e',
        script,
      ])
      expect(result.stdout.trim()).toBe(process.platform)
    }
  })

  test('a cache damaged past its header is a miss and is written again, not a crash in V8', async () => {
    // In a child process: a damaged payload that reaches V8 aborts the process (exit 133).
    const file = join(dir, 'many.cjs')
    const cacheDir = join(dir, 'cache-damaged')
    const functions = Array.from({ length: 400 }, (_, i) => `function f${i}() { return ${i} * 2 }`)
    writeFileSync(
      file,
      `${functions.join('\n')}\nexports.sum = [${functions.map((_, i) => `f${i}()`).join(',')}].reduce((a, b) => a + b)\n`,
    )
    const built = fileURLToPath(new URL('../../dist/supervisor/code-cache.js', import.meta.url))
    const script = `import { requireWithCodeCache } from ${JSON.stringify(built)}
const loaded = requireWithCodeCache(${JSON.stringify(file)}, ${JSON.stringify(cacheDir)}, 'many')
console.log(loaded.exports.sum); loaded.save()`
    const run = () =>
      runCommand(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], {
        allowFailure: true,
      })
    expect((await run()).stdout.trim()).toBe(String(399 * 400))
    const [name] = readdirSync(join(cacheDir, 'code-cache'))
    const path = join(cacheDir, 'code-cache', name!)
    const good = readFileSync(path)
    expect(good.length).toBeGreaterThan(8192)
    const damaged = Buffer.from(good)
    for (let at = 4096; at < damaged.length; at += 97) damaged[at] = damaged[at]! ^ 0xff
    writeFileSync(path, damaged)
    const result = await run()
    expect({ code: result.code, signal: result.signal, stdout: result.stdout.trim() }).toEqual({
      code: 0,
      signal: null,
      stdout: String(399 * 400),
    })
    // Saved again whole: the next process loads it as a cache.
    expect(readFileSync(path).equals(damaged)).toBe(false)
  })
})

describe('dynamicImportAt: one test for the cache and the bundle scripts', () => {
  test('finds an import() call, not a call of a name or member that ends in import', () => {
    for (const text of ['import("x")', 'await import(x)', '(0,import(x))', 'x=>import(y)'])
      expect(dynamicImportAt(Buffer.from(text)), text).toBeGreaterThanOrEqual(0)
    for (const text of [
      '_import(x)',
      'reimport(x)',
      'o.import(x)',
      '$import(x)',
      'importx(y)',
      'import x from',
    ])
      expect(dynamicImportAt(Buffer.from(text)), text).toBe(-1)
    expect(dynamicImportAt(Buffer.from('a.import(1); b(import(2))'))).toBe(15)
  })
})
