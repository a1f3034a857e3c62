import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test, vi } from 'vitest'
import { contentHash, keyOfFiles } from './content-hash.js'

const dir = mkdtempSync(join(tmpdir(), 'content-hash-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

describe('content hashes for cache keys', () => {
  test('the same bytes give the same hash at any path; it is remembered on disk per path', () => {
    const cache = join(dir, 'cache')
    writeFileSync(join(dir, 'a'), 'same bytes')
    writeFileSync(join(dir, 'b'), 'same bytes')
    expect(contentHash(join(dir, 'a'), cache)).toBe(sha256('same bytes'))
    expect(contentHash(join(dir, 'b'), cache)).toBe(sha256('same bytes'))
    expect(readdirSync(join(cache, 'hashes'))).toHaveLength(2)
  })

  test('a rewrite is seen even when the size and mtime are put back (ctime moves)', async () => {
    const cache = join(dir, 'cache')
    const file = join(dir, 'rewritten')
    writeFileSync(file, 'version 1')
    const { atime, mtime } = statSync(file)
    expect(contentHash(file, cache)).toBe(sha256('version 1'))
    await new Promise((resolve) => setTimeout(resolve, 20))
    writeFileSync(file, 'version 2')
    utimesSync(file, atime, mtime)
    expect(contentHash(file, cache)).toBe(sha256('version 2'))
  })

  test('a key of several files is computed once, in this process and the next, until one of them changes', async () => {
    const cache = join(dir, 'key-cache')
    const files = [join(dir, 'k1'), join(dir, 'k2')]
    writeFileSync(files[0]!, 'one')
    writeFileSync(files[1]!, 'two')
    let computed = 0
    const key = () => keyOfFiles('test-key v1', files, cache, () => `key-${++computed}`)
    expect([key(), key()]).toEqual(['key-1', 'key-1'])
    expect(readdirSync(join(cache, 'hashes'))).toHaveLength(1)
    // Another process: nothing in memory, the memo on disk.
    vi.resetModules()
    const { keyOfFiles: fresh } = await import('./content-hash.js')
    expect(fresh).not.toBe(keyOfFiles)
    expect(fresh('test-key v1', files, cache, () => 'not computed')).toBe('key-1')
    expect(fresh('test-key v2', files, cache, () => 'another name')).toBe('another name')
    await new Promise((resolve) => setTimeout(resolve, 20))
    writeFileSync(files[1]!, 'two, changed')
    expect(key()).toBe('key-2')
  })
})
