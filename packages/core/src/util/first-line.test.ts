import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { firstLine, firstLineOf, readFirstLine } from './first-line.js'

describe('first line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmctl-first-line-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  test('of a text, an error and a file', () => {
    expect(firstLine('one\ntwo\n')).toBe('one')
    expect(firstLine('only')).toBe('only')
    expect(firstLine('')).toBe('')
    expect(firstLineOf(new Error('bad thing\n  at excerpt'))).toBe('bad thing')
    expect(firstLineOf('plain\nrest')).toBe('plain')
    writeFileSync(join(dir, 'package'), 'linux-image-6.1.0-28-amd64\nmore\n')
    writeFileSync(join(dir, 'empty'), '\nsecond\n')
    expect(readFirstLine(join(dir, 'package'))).toBe('linux-image-6.1.0-28-amd64')
    expect(readFirstLine(join(dir, 'empty'))).toBeUndefined()
    expect(readFirstLine(join(dir, 'missing'))).toBeUndefined()
  })
})
