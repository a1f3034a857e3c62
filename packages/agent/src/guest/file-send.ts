import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs'
import { type FileHandle, open } from 'node:fs/promises'
import type { ServerWritableStream } from '@grpc/grpc-js'
import type { PullRequest, PullResponse } from '../generated/vmctl/agent/v1/agent.js'
import { DATA_PREFIX_BYTES, dataMessage } from './file-codecs.js'

/**
 * Bytes per data message of a pull. Fewer, larger messages cost less per byte in grpc-js and
 * HTTP/2 (each is framed, queued and called back once); HTTP/2 still splits them into its own
 * frames and backpressure still bounds what is buffered (one message ahead of the stream).
 */
export const PULL_CHUNK_BYTES = 1024 * 1024
/** A small file gets a small buffer: readFile('/etc/hostname') should not allocate a MiB. */
const MIN_CHUNK_BYTES = 16 * 1024
/**
 * The least room sendSmallFile reads a file into: its buffer (with the message's prefix) stays
 * under 4 KiB, which Buffer.allocUnsafe carves from Node's shared pool instead of allocating an
 * ArrayBuffer of its own: 3 µs against 30 for 16 KiB in the guest under TCG (node -e, medians of
 * 300). A pool's slice is never handed out twice, so the channel may hold it until it is sent.
 */
const SMALL_FILE_ROOM = 4095 - DATA_PREFIX_BYTES
/** A regular file below this size is read at once, synchronously (sendSmallFile). */
export const READ_AT_ONCE_BYTES = 64 * 1024

/**
 * Sends a small regular file (0 < size < READ_AT_ONCE_BYTES by its stat) as one data message and
 * ends the call, all in the tick the caller wrote the file's stat in: stat, data and status then
 * leave the guest as one write (the call lane joins frames of one tick), where the asynchronous
 * path made three (the stat; the data after a read on the thread pool; the status after the read
 * that finds the end) and four thread-pool round trips (open, read, read, close), each a wake-up
 * of the emulated guest. A read that returns less than asked is the end of a regular file. Blocking the event loop for a few system calls on a small file costs less
 * than those. Only regular files with a size: a FIFO's open, /proc/kmsg's read (size 0) can block.
 * Returns false, having sent nothing, when the file grew past its buffer (then stream it).
 * `noFollow`: the path was resolved inside a chroot root (resolveInRoot followed its symlinks), so
 * a symlink there now was put in since, and would be followed in the agent's own root: refused.
 */
export function sendSmallFile(
  call: ServerWritableStream<PullRequest, PullResponse>,
  target: string,
  expectedSize: number,
  fail: (error: NodeJS.ErrnoException) => void,
  noFollow = false,
): boolean {
  let fd: number
  try {
    // O_NONBLOCK: the path was a regular file at its stat, but a guest process may have put a FIFO
    // there since, whose blocking open would stop the agent's only thread until a writer came. A
    // regular file's reads do not see the flag.
    fd = openSync(target, constants.O_RDONLY | constants.O_NONBLOCK | (noFollow ? constants.O_NOFOLLOW : 0))
  } catch (error) {
    fail(error as NodeJS.ErrnoException)
    return true
  }
  try {
    // What was opened is what is read: a FIFO (or anything else) swapped in since the stat would
    // read as an empty file.
    if (!fstatSync(fd).isFile())
      throw Object.assign(new Error('it is not a regular file any more (replaced while it was read)'), {
        code: 'EINVAL',
      })
    // One byte more than the stat said: a read that fills the room means the file grew (streamed).
    const room = Math.max(SMALL_FILE_ROOM, expectedSize + 1)
    const buffer = Buffer.allocUnsafe(DATA_PREFIX_BYTES + room)
    let length = 0
    for (;;) {
      const wanted = room - length
      const bytesRead = readSync(fd, buffer, DATA_PREFIX_BYTES + length, wanted, null)
      length += bytesRead
      if (length === room) return false
      // A regular file's short read is its end: no second read (a system call) to find it.
      if (bytesRead < wanted) break
    }
    if (length > 0) call.write(dataMessage(buffer, length))
    call.end()
    return true
  } catch (error) {
    fail(error as NodeJS.ErrnoException)
    return true
  } finally {
    closeSync(fd)
  }
}

/**
 * Sends the regular file at `target` as data messages, then ends the call. Each chunk is read
 * straight into the buffer its message is serialized from (see file-codecs.ts), so the agent
 * copies a byte nowhere on its way from the page cache to the channel.
 *
 * The next chunk is read while this one is sent: the read (a copy out of the page cache, on
 * libuv's thread pool) runs on the guest's other vCPU while the agent's thread writes to the port,
 * where reading only once a chunk had left kept the port idle for every read. And chunks are read
 * into buffers that were sent already (ChunkBuffers): a fresh MiB is 256 page faults in the guest,
 * each page zeroed by its kernel, and unmapped again once collected. At most three chunks are held.
 * A read error goes to `fail` (the caller maps it to a status); a cancelled call stops reading and
 * closes the file.
 */
export async function sendFile(
  call: ServerWritableStream<PullRequest, PullResponse>,
  target: string,
  expectedSize: number,
  fail: (error: NodeJS.ErrnoException) => void,
): Promise<void> {
  let cancelled = false
  let wake: (() => void) | undefined
  const onCancelled = () => {
    cancelled = true
    wake?.()
  }
  call.once('cancelled', onCancelled)
  let file: FileHandle | undefined
  let reading: Promise<Chunk> | undefined
  try {
    file = await open(target, 'r')
    const opened = file
    const buffers = new ChunkBuffers()
    let position = 0
    const readNext = (): Promise<Chunk> => {
      const size = Math.min(PULL_CHUNK_BYTES, Math.max(MIN_CHUNK_BYTES, expectedSize - position + 1))
      const buffer = buffers.take(DATA_PREFIX_BYTES + size)
      // Settled as a value either way: a read that fails while the last chunk waits for 'drain'
      // has no one awaiting it yet, and an unhandled rejection would end the agent.
      return opened.read(buffer, DATA_PREFIX_BYTES, size, position).then(
        ({ bytesRead }) => {
          position += bytesRead
          return { buffer, bytesRead }
        },
        (error: NodeJS.ErrnoException) => ({ error }),
      )
    }
    reading = readNext()
    while (!cancelled) {
      const chunk = await reading
      reading = undefined
      if (cancelled) break
      if ('error' in chunk) throw chunk.error
      const { buffer, bytesRead } = chunk
      if (bytesRead === 0) {
        call.end()
        break
      }
      // Before the write: the thread pool starts on the next chunk while this one goes out.
      reading = readNext()
      buffers.written(buffer)
      if (!call.write(dataMessage(buffer, bytesRead))) {
        await new Promise<void>((resolve) => {
          wake = resolve
          call.once('drain', resolve)
        })
        call.off('drain', wake!)
        wake = undefined
        buffers.drained()
      }
    }
  } catch (error) {
    if (!cancelled) fail(error as NodeJS.ErrnoException)
  } finally {
    call.off('cancelled', onCancelled)
    // A read still under way holds the file: closed once it is done.
    await reading
    await file?.close().catch(() => {})
  }
}

type Chunk = { buffer: Buffer; bytesRead: number } | { error: NodeJS.ErrnoException }

/**
 * The buffers of one pull's chunks, reused once their bytes have certainly left. Over the call
 * lane a written chunk is not copied: the channel, the multiplexer and the port's socket hold it
 * until the port took it. When the call says 'drain' after a chunk's write, every large frame
 * written before has been taken by the port, but the chunk's last frame, if small, may still wait
 * in the multiplexer's queue for the end of the tick; it is copied out of it once the next
 * chunk's first large frame is written. So a buffer is free again once the chunk after it has
 * been written and drained. (grpc-js copies each message as it is written: any rule holds there.)
 * Without drains (small chunks, or a transport that never asks to wait) nothing is reused.
 */
export class ChunkBuffers {
  private readonly spare: Buffer[] = []
  /** Written, oldest first, since the last drain. */
  private unsent: Buffer[] = []

  /** A buffer of `bytes`: a spare one of that size, or a new one. */
  take(bytes: number): Buffer {
    const index = this.spare.findIndex((buffer) => buffer.length === bytes)
    if (index < 0) return Buffer.allocUnsafe(bytes)
    return this.spare.splice(index, 1)[0]!
  }

  written(buffer: Buffer): void {
    this.unsent.push(buffer)
    // Not known to be sent for a while: left to the garbage collector rather than held here.
    if (this.unsent.length > 2) this.unsent.shift()
  }

  /** The call drained after the last write: all but the last buffer written are free. */
  drained(): void {
    const last = this.unsent.pop()
    // Two spares are all a pull takes at once (one read ahead); more would only hold memory.
    for (const buffer of this.unsent) if (this.spare.length < 2) this.spare.push(buffer)
    this.unsent = last ? [last] : []
  }
}
