import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { bootsVms, committedSeconds, FILE_SECONDS, slowestFirst } from './slowest-first.js'

const names = (files: Array<{ file: string }>) => files.map((f) => f.file)

describe('slowestFirst', () => {
  test('committed seconds decide, over vitest cache and file size', () => {
    const order = slowestFirst(
      [
        { file: 'a.vm.test.ts', sizeBytes: 9000, cachedMs: 500_000 },
        { file: 'b.vm.test.ts', sizeBytes: 10, cachedMs: 1 },
        { file: 'c.test.ts', sizeBytes: 5000 },
      ],
      { 'a.vm.test.ts': 20, 'b.vm.test.ts': 200, 'c.test.ts': 1 },
    )
    expect(names(order)).toEqual(['b.vm.test.ts', 'a.vm.test.ts', 'c.test.ts'])
  })

  test("a file not committed goes by vitest's cached duration", () => {
    const order = slowestFirst(
      [
        { file: 'new-unit.test.ts', sizeBytes: 1, cachedMs: 90_000 },
        { file: 'known.vm.test.ts', sizeBytes: 1 },
      ],
      { 'known.vm.test.ts': 60 },
    )
    expect(names(order)).toEqual(['new-unit.test.ts', 'known.vm.test.ts'])
  })

  test('a file known to neither: a VM file is the median VM file, any other 0 (then by size)', () => {
    const seconds = { 'x.vm.test.ts': 10, 'y.vm.test.ts': 100, 'z.vm.test.ts': 300, 'u.test.ts': 50 }
    const order = slowestFirst(
      [
        { file: 'x.vm.test.ts', sizeBytes: 1 },
        { file: 'y.vm.test.ts', sizeBytes: 1 },
        { file: 'z.vm.test.ts', sizeBytes: 1 },
        { file: 'u.test.ts', sizeBytes: 1 },
        { file: 'examples/9-new/new.test.ts', sizeBytes: 2 },
        { file: 'small-unit.test.ts', sizeBytes: 10 },
        { file: 'large-unit.test.ts', sizeBytes: 20 },
      ],
      seconds,
    )
    expect(names(order)).toEqual([
      'z.vm.test.ts',
      'examples/9-new/new.test.ts', // 100 s, the median, ahead of y (same) by its size
      'y.vm.test.ts',
      'u.test.ts',
      'x.vm.test.ts',
      'large-unit.test.ts',
      'small-unit.test.ts',
    ])
  })

  test('which files boot VMs', () => {
    expect(bootsVms('packages/core/src/vm/vm.vm.test.ts')).toBe(true)
    expect(bootsVms('examples/3-postgresql/postgresql.test.ts')).toBe(true)
    expect(bootsVms('e2e/install-from-npm.vm.test.ts')).toBe(true)
    expect(bootsVms('packages/core/src/vm/vm-options.test.ts')).toBe(false)
  })
})

test('committed seconds: read from the root, none without the file, a broken file throws', () => {
  const root = mkdtempSync(join(tmpdir(), 'vmctl-seconds-'))
  try {
    expect(committedSeconds(root)).toEqual({})
    writeFileSync(join(root, FILE_SECONDS), '{"a.test.ts": 3}')
    expect(committedSeconds(root)).toEqual({ 'a.test.ts': 3 })
    writeFileSync(join(root, FILE_SECONDS), '{')
    expect(() => committedSeconds(root)).toThrow(SyntaxError)
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
})
