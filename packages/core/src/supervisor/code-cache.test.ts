import { mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { requireWithCodeCache } from './code-cache.js'

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
})
