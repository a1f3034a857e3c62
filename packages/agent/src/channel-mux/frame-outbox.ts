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
 * A large DATA frame is written apart, without a copy, after whatever is queued. A DATA frame that
 * finds the transport full makes its sender wait for the transport's 'drain'.
 */
export class FrameOutbox {
  private pieces: Buffer[] = []
  private bytes = 0
  private scheduled: NodeJS.Immediate | undefined
  /** A DATA frame found the transport full, and it has not drained since. */
  private full = false
  private readonly drainWaiters: Array<() => void> = []

  constructor(private readonly transport: Writable) {
    transport.on('drain', this.onDrain)
  }

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

  /**
   * Writes `bytes` after what is queued, now: a handshake line, whose timing the restore feels, or
   * a frame the peer waits for (WINDOW, PARK).
   */
  writeNow(bytes: Buffer): boolean {
    this.pieces.push(bytes)
    this.bytes += bytes.length
    return this.flush()
  }

  /**
   * One DATA frame of `channel`. Returns a promise only when the transport is full: resolved when
   * it drains, or when the outbox is dropped.
   */
  sendData(channel: number, payload: Buffer): Promise<void> | undefined {
    if (this.writeData(channel, payload)) return undefined
    this.full = true
    return new Promise<void>((resolve) => this.drainWaiters.push(resolve))
  }

  /**
   * A handshake line, now; none while the transport is full, where lines would only pile up behind
   * data the peer is not reading.
   */
  writeLine(bytes: Buffer): void {
    if (!this.full) this.writeNow(bytes)
  }

  /** One DATA frame of `channel`; false when the transport is full. */
  private writeData(channel: number, payload: Buffer): boolean {
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

  /** Forgets what is queued and wakes every sender waiting (the session on this transport is over). */
  drop(): void {
    if (this.scheduled) clearImmediate(this.scheduled)
    this.scheduled = undefined
    this.pieces = []
    this.bytes = 0
    this.transport.off('drain', this.onDrain)
    for (const wake of this.drainWaiters.splice(0)) wake()
  }

  private readonly onDrain = () => {
    this.full = false
    for (const wake of this.drainWaiters.splice(0)) wake()
  }

  private readonly flushScheduled = () => {
    this.scheduled = undefined
    this.flush()
  }
}
