import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import { allocatedBytes, denserThanSaved, rewriteSparse } from './sparse-ram.js'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe('template RAM files made sparse again', () => {
  test('zero pages become holes, the bytes read back the same, a partial last page included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sparse-ram-'))
    dirs.push(dir)
    const file = join(dir, 'ram')
    // 8 MiB + 100 bytes, written dense (as tar without --sparse restores it): mostly zeros, a few
    // touched pages at the start, in the middle (across a 1 MiB chunk boundary) and at the end.
    const data = Buffer.alloc(8 * 2 ** 20 + 100)
    data.fill(1, 0, 3 * 4096)
    data.fill(7, 2 ** 20 - 4096, 2 ** 20 + 4096)
    data.fill(9, data.length - 50)
    writeFileSync(file, data)
    const dense = allocatedBytes(statSync(file))
    expect(dense).toBeGreaterThanOrEqual(data.length - 4096)

    const sparse = await rewriteSparse(file)
    expect(readFileSync(file).equals(data)).toBe(true)
    expect(sparse).toBeLessThanOrEqual(7 * 4096 + 4096)
    expect(sparse).toBe(allocatedBytes(statSync(file)))
  })

  test('a file about as dense as when it was saved is left alone', () => {
    const MiB = 2 ** 20
    expect(denserThanSaved(190 * MiB, 181 * MiB)).toBe(false)
    expect(denserThanSaved(1024 * MiB, 181 * MiB)).toBe(true)
  })
})
