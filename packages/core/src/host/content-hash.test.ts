import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { contentHash } from './content-hash.js'

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
})
