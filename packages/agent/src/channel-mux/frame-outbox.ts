import type { Writable } from 'node:stream'
import { encodeFrameHeader, FrameType } from './frame-codec.js'

/** A DATA frame's payload up to this size is copied behind its header, and may join other frames. */
const COPY_FRAME_BYTES = 16 * 1024
/** Queued bytes are written at once when they reach this much. */
const JOIN_BYTES = 64 * 1024

/**
 * How one transport's frames (and handshake lines) leave: the small ones written in one turn of
 * the event loop go out in one write at the end of that turn (setImmediate), in order. A call on
 * the lane is an OPEN and a DATA frame from the host, and a DATA and a CLOSE frame from the guest:
 * each write to a virtio-serial port is a transfer and a wake-up of the emulated guest (the kernel
 * turns a writev into a write per piece, so the pieces are joined), and the host's supervisor
 * writes the OPEN before the request's DATA reaches it from its client's socket in the same turn.
 * A large DATA frame is written apart, without a copy, after whatever is queued.
 */
export class FrameOutbox {
  private pieces: Buffer[] = []
  private bytes = 0
  private scheduled: NodeJS.Immediate | undefined

  constructor(private readonly transport: Writable) {}

  /** Queues whole frames or lines; false when the transport is full (wait for its 'drain'). */
  write(...pieces: Buffer[]): boolean {
    for (const piece of pieces) {
      this.pieces.push(piece)
      this.bytes += piece.length
    }
    if (this.bytes >= JOIN_BYTES) return this.flush()
    this.scheduled ??= setImmediate(this.flushScheduled)
    return !this.transport.writableNeedDrain
  }

  /** Writes `bytes` after what is queued, now (a handshake line, whose timing the restore feels). */
  writeNow(bytes: Buffer): boolean {
    this.pieces.push(bytes)
    this.bytes += bytes.length
    return this.flush()
  }

  /** One DATA frame of `channel`; false when the transport is full. */
  writeData(channel: number, payload: Buffer): boolean {
    const header = encodeFrameHeader(FrameType.Data, channel, payload.length)
    if (payload.length <= COPY_FRAME_BYTES) return this.write(header, payload)
    this.flush()
    if (!this.transport.writable) return true
    this.transport.cork()
    this.transport.write(header)
    const ok = this.transport.write(payload)
    this.transport.uncork()
    return ok
  }

  /** Writes what is queued now; false when the transport is full. */
  flush(): boolean {
    if (this.scheduled) clearImmediate(this.scheduled)
    this.scheduled = undefined
    if (this.pieces.length === 0) return !this.transport.writableNeedDrain
    const bytes = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.bytes)
    this.pieces = []
    this.bytes = 0
    // A transport that closed meanwhile: its session is being dropped, and the bytes with it.
    if (!this.transport.writable) return true
    return this.transport.write(bytes)
  }

  /** Forgets what is queued (the session on this transport is over). */
  drop(): void {
    if (this.scheduled) clearImmediate(this.scheduled)
    this.scheduled = undefined
    this.pieces = []
    this.bytes = 0
  }

  private readonly flushScheduled = () => {
    this.scheduled = undefined
    this.flush()
  }
}
