import { Duplex } from 'node:stream'
import type { ChannelSink } from './channel-sink.js'
import { FrameType, MAX_FRAME_PAYLOAD } from './frame-codec.js'

/**
 * Bytes a sender may have in flight on one channel before the receiver grants more. Big enough to
 * keep a virtio-serial port busy, small enough that a reader that stops reading (a slow consumer of
 * a 1 GiB pull) holds up only its own channel instead of filling memory. Measured under TCG, host
 * to guest over a raw channel: 1 MiB gave 3.1 MB/s, 8 MiB 7.5 MB/s (the guest reads a
 * virtio-serial port 4 KB at a time, so credit comes back slowly).
 */
export const CHANNEL_WINDOW_BYTES = 4 * 1024 * 1024
const CREDIT_BATCH_BYTES = CHANNEL_WINDOW_BYTES / 4

/** One multiplexed byte stream. Flow control is per channel, by credit (WINDOW frames). */
export class MuxChannel extends Duplex {
  readonly id: number
  /** What the channel carries: "" for gRPC, or a raw service (see raw-services.ts). */
  readonly service: string
  private readonly session: ChannelSink
  private credit = CHANNEL_WINDOW_BYTES
  private unacknowledged = 0
  private isOpen = false
  private remoteClosed = false
  /** closeWhenWritten(): the end of our writes is a CLOSE, not an END. */
  private closeAtFinal = false
  private creditWaiter: (() => void) | undefined
  private openWaiter: (() => void) | undefined

  constructor(session: ChannelSink, id: number, service = '') {
    super({ allowHalfOpen: true })
    this.session = session
    this.id = id
    this.service = service
    // The guest side is created by the peer's OPEN; the host side once OPEN is sent.
    this.isOpen = session.role === 'guest'
  }

  /** @internal */
  opened(): void {
    this.isOpen = true
    const wake = this.openWaiter
    this.openWaiter = undefined
    wake?.()
  }

  /** @internal */
  receive(data: Buffer): void {
    this.unacknowledged += data.length
    // Credit goes back in batches (a WINDOW frame per 4 KB piece would double the frame count),
    // and only while the reader keeps up; _read() returns it once the reader catches up.
    if (this.push(data) && this.unacknowledged >= CREDIT_BATCH_BYTES) this.grantCredit()
  }

  /** @internal */
  receiveEnd(): void {
    this.push(null)
  }

  /**
   * @internal The peer is gone. What it sent before is still the reader's: the readable side ends
   * after it and the channel goes once the reader has taken it (a sender that writes its last
   * bytes and closes at once loses nothing to a slow reader); what we write from now on is
   * dropped. 'remote-close' says so at once, for a reader to whom it means "stop" (a call cancelled).
   */
  receiveClose(): void {
    if (this.remoteClosed) return
    this.remoteClosed = true
    const wake = this.creditWaiter
    this.creditWaiter = undefined
    wake?.()
    if (this.readableEnded) {
      this.destroy()
      return
    }
    this.once('end', () => this.destroy())
    this.push(null)
    this.emit('remote-close')
  }

  /**
   * Ends the channel in both directions once what was written has been sent: a CLOSE right after
   * the last DATA (one write with it, frame-outbox.ts), where end() would send an END and wait for
   * the peer's CLOSE. The peer's reader still gets every byte (receiveClose).
   */
  closeWhenWritten(): void {
    if (this.destroyed) return
    this.closeAtFinal = true
    this.once('finish', () => this.destroy())
    this.end()
  }

  /** @internal */
  receiveWindow(bytes: number): void {
    this.credit += bytes
    const wake = this.creditWaiter
    this.creditWaiter = undefined
    wake?.()
  }

  override _read(): void {
    // Not every time the reader asks: a WINDOW frame for each small DATA frame doubled the frames
    // of a unary call (each one a wake-up of the emulated guest). A sender can only be stuck
    // waiting for credit once a whole window is unacknowledged, which is more than a batch.
    if (this.unacknowledged >= CREDIT_BATCH_BYTES) this.grantCredit()
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.sendData(chunk).then(() => callback(), callback)
  }

  // HTTP/2 writes many small pieces (frame headers, 16 KB DATA frames); one mux frame for all of
  // them halves the per-byte work in a guest where every instruction is emulated.
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    const data = chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk))
    this.sendData(data).then(() => callback(), callback)
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.closeAtFinal || this.remoteClosed) {
      callback()
      return
    }
    this.whenOpen()
      .then(() => {
        this.session.sendControl(FrameType.End, this.id)
        callback()
      })
      .catch(callback)
  }

  override _destroy(error: Error | null, callback: (error: Error | null) => void): void {
    if (!this.remoteClosed && this.session.canSend(this)) this.session.sendControl(FrameType.Close, this.id)
    this.session.forget(this)
    const wake = this.creditWaiter ?? this.openWaiter
    this.creditWaiter = undefined
    this.openWaiter = undefined
    wake?.()
    callback(error)
  }

  private grantCredit(): void {
    if (this.unacknowledged === 0) return
    this.session.sendWindow(this.id, this.unacknowledged)
    this.unacknowledged = 0
  }

  private async sendData(chunk: Buffer): Promise<void> {
    let offset = 0
    while (offset < chunk.length) {
      await this.whenOpen()
      while (this.credit <= 0) {
        await new Promise<void>((resolve) => {
          this.creditWaiter = resolve
        })
        if (this.remoteClosed) return
        if (this.destroyed) throw new Error('agent channel closed')
      }
      if (this.remoteClosed) return // nobody to read it: dropped
      const size = Math.min(chunk.length - offset, MAX_FRAME_PAYLOAD, this.credit)
      this.credit -= size
      const blocked = this.session.sendData(this.id, chunk.subarray(offset, offset + size))
      if (blocked) await blocked
      offset += size
    }
  }

  private async whenOpen(): Promise<void> {
    while (!this.isOpen || !this.session.canSend(this)) {
      if (this.destroyed) throw new Error('agent channel closed')
      if (this.isOpen && !this.session.canSend(this))
        throw new Error('agent channel session is not connected')
      await new Promise<void>((resolve) => {
        this.openWaiter = resolve
      })
    }
  }
}
