import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { sendSmallFile } from './file-send.js'

const work = mkdtempSync(join(tmpdir(), 'file-send-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

describe('sendSmallFile', () => {
  test('a FIFO put where a regular file was stat-ed does not block the agent, and fails the call at once', () => {
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
    // Not an empty file's success: it is not what was stat-ed.
    expect(seen).toEqual(['fail EINVAL'])
  })

  test("in a chroot root, a symlink swapped in is not followed into the agent's own root", () => {
    const link = join(work, 'link')
    symlinkSync('/etc/hostname', link)
    const seen: string[] = []
    const call = { write: () => seen.push('write'), end: () => seen.push('end') }
    expect(sendSmallFile(call as never, link, 10, (error) => seen.push(`fail ${error.code}`), true)).toBe(
      true,
    )
    expect(seen).toEqual(['fail ELOOP'])
    // Without a root a symlinked path is the user's own (/etc/resolv.conf): followed.
    seen.length = 0
    sendSmallFile(call as never, link, 10, (error) => seen.push(`fail ${error.code}`), false)
    expect(seen).toEqual(['write', 'end'])
  })
})
