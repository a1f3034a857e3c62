import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import type { PullResponse } from '../generated/vmctl/agent/v1/agent.js'
import { ChunkBuffers, PULL_CHUNK_BYTES, sendFile, sendSmallFile } from './file-send.js'

const work = mkdtempSync(join(tmpdir(), 'file-send-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

describe('sendSmallFile', () => {
  const sendOf = (size: number, statSize = size) => {
    const path = join(work, `small-${size}-${statSize}`)
    const bytes = randomBytes(size)
    writeFileSync(path, bytes)
    const messages: Buffer[] = []
    const call = {
      write: (message: PullResponse) => {
        if (message.kind?.$case === 'data') messages.push(Buffer.from(message.kind.value))
      },
      end: () => messages.push(Buffer.from('END')),
    }
    const sent = sendSmallFile(call as never, path, statSize, (error) => {
      throw error
    })
    return { sent, bytes, messages }
  }

  test.each([1, 10, 4088, 4089, 4090, 20000])('a %i-byte file is sent whole, then the end', (size) => {
    const { sent, bytes, messages } = sendOf(size)
    expect(sent).toBe(true)
    expect(messages).toHaveLength(2)
    expect(messages[0]!.equals(bytes)).toBe(true)
    expect(messages[1]!.toString()).toBe('END')
  })

  test.each([4089, 5000])(
    'a file grown to %i bytes since its stat (10) sends nothing: it is streamed',
    (size) => {
      const { sent, messages } = sendOf(size, 10)
      expect(sent).toBe(false)
      expect(messages).toEqual([])
    },
  )

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

/**
 * A call that holds written data messages the way the call lane does at worst (see ChunkBuffers):
 * at a drain, every message but the last has left, and the last one's final bytes leave only at
 * the next drain (or at the end). What "left" is copied then, so a buffer reused too early shows
 * as bytes of a later chunk in the output.
 */
class LaneLikeCall extends EventEmitter {
  readonly received: Buffer[] = []
  readonly backing = new Set<ArrayBufferLike>()
  ended = false
  private held: Buffer | undefined
  private tail: Buffer | undefined

  write(message: PullResponse): boolean {
    if (message.kind?.$case !== 'data') throw new Error('a data message was expected')
    const data = message.kind.value
    this.backing.add(data.buffer)
    this.held = data
    if (data.length <= 64 * 1024) {
      this.leave()
      return true
    }
    setImmediate(() => {
      this.leave()
      this.emit('drain')
    })
    return false
  }

  end(): void {
    this.leave()
    if (this.tail) this.received.push(Buffer.from(this.tail))
    this.tail = undefined
    this.ended = true
  }

  private leave(): void {
    if (this.tail) this.received.push(Buffer.from(this.tail))
    this.tail = undefined
    const data = this.held
    this.held = undefined
    if (!data) return
    const cut = Math.max(0, data.length - 100)
    this.received.push(Buffer.from(data.subarray(0, cut)))
    this.tail = data.subarray(cut)
  }
}

describe('sendFile', () => {
  test('a file of several chunks arrives whole, through reused buffers, with a read always ahead', async () => {
    const path = join(work, 'chunks.bin')
    const content = randomBytes(5 * PULL_CHUNK_BYTES + 12_345)
    writeFileSync(path, content)
    const call = new LaneLikeCall()
    const failures: string[] = []
    await sendFile(call as never, path, content.length, (error) => failures.push(String(error)))
    expect(failures).toEqual([])
    expect(call.ended).toBe(true)
    expect(Buffer.concat(call.received).equals(content)).toBe(true)
    // Six data messages (five full chunks and the rest) from three buffers, not six.
    expect(call.backing.size).toBeLessThanOrEqual(4)
  })

  test('ChunkBuffers frees a buffer only once the chunk after it was written and drained', () => {
    const buffers = new ChunkBuffers()
    const first = buffers.take(10)
    buffers.written(first)
    buffers.drained()
    expect(buffers.take(10)).not.toBe(first)
    const second = Buffer.alloc(10)
    buffers.written(second)
    buffers.drained()
    expect(buffers.take(10)).toBe(first)
    expect(buffers.take(10)).not.toBe(second)
  })
})
