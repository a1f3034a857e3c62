import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { sendSmallFile } from './file-send.js'

const work = mkdtempSync(join(tmpdir(), 'file-send-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

describe('sendSmallFile', () => {
  test('a FIFO put where a regular file was stat-ed does not block the agent: the call ends at once', () => {
    const fifo = join(work, 'fifo')
    execFileSync('mkfifo', [fifo])
    const seen: string[] = []
    const call = {
      write: () => seen.push('write'),
      end: () => seen.push('end'),
    }
    // A blocking open of a FIFO without a writer would never return: this test would hang.
    const sent = sendSmallFile(call as never, fifo, 10, (error) => seen.push(`fail ${error.code}`))
    expect(sent).toBe(true)
    expect(seen).toEqual(['end'])
  })
})
