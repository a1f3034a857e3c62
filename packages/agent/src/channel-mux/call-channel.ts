import { EventEmitter } from 'node:events'
import type { ChannelSink } from './channel-sink.js'
import { FrameType, MAX_FRAME_PAYLOAD } from './frame-codec.js'
import { CHANNEL_WINDOW_BYTES } from './mux-channel.js'

const CREDIT_BATCH_BYTES = CHANNEL_WINDOW_BYTES / 4
/** Bytes written and not yet sent above which write() asks the writer to wait for 'drain'. */
export const HIGH_WATER_BYTES = 64 * 1024

/**
 * The guest's end of a channel that carries one agent call (the call lane): the frames and the
 * flow control of MuxChannel, without a Node stream. A call is a request and an answer; a Duplex's
 * construction, flow, end, finish and destroy were ~12% of the agent's time for an info() under
 * TCG (docs/call-lane-costs.md). Events, as a stream's for LaneServerCall: 'data' (a Buffer),
 * 'end' (the peer's END), 'remote-close' (the peer's CLOSE: what came before it is still
 * delivered, then 'end'), 'drain', 'error' and 'close'. The guest's side is open from its start.
 */
export class CallChannel extends EventEmitter {
  readonly id: number
  readonly service: string
  destroyed = false
  private readonly session: ChannelSink
  private credit = CHANNEL_WINDOW_BYTES
  private unacknowledged = 0
  private paused = false
  /** Received while paused, delivered on resume. */
  private readonly inbox: Buffer[] = []
  private peerEnded = false
  private endEmitted = false
  private remoteClosed = false
  /** Written, waiting for credit or for the transport to drain. */
  private readonly pending: Buffer[] = []
  private pendingBytes = 0
  private blocked = false
  private needDrain = false
  private closeWhenSent = false

  constructor(session: ChannelSink, id: number, service: string) {
    super()
    this.session = session
    this.id = id
    this.service = service
  }

  /** @internal */
  opened(): void {}

  /** @internal */
  receive(data: Buffer): void {
    this.unacknowledged += data.length
    if (this.paused || this.inbox.length > 0) {
      this.inbox.push(data)
      return
    }
    this.emit('data', data)
    // Credit goes back in batches and only while the reader keeps up, as MuxChannel's.
    if (!this.paused && this.unacknowledged >= CREDIT_BATCH_BYTES) this.grantCredit()
  }

  /** @internal */
  receiveEnd(): void {
    this.peerEnded = true
    this.deliverEnd()
  }

  /** @internal The peer is gone: what it sent before is still the reader's, then the channel goes. */
  receiveClose(): void {
    if (this.remoteClosed) return
    this.remoteClosed = true
    this.peerEnded = true
    this.dropPending()
    if (this.endEmitted) {
      this.destroy()
      return
    }
    this.once('end', () => this.destroy())
    this.emit('remote-close')
    this.deliverEnd()
  }

  /** @internal */
  receiveWindow(bytes: number): void {
    this.credit += bytes
    this.send()
  }

  /** Queues `chunk` to send; false when the writer should wait for 'drain'. Dropped once closed. */
  write(chunk: Buffer): boolean {
    if (this.destroyed || this.remoteClosed || this.closeWhenSent) return true
    this.pending.push(chunk)
    this.pendingBytes += chunk.length
    this.send()
    if (this.pendingBytes <= HIGH_WATER_BYTES) return true
    this.needDrain = true
    return false
  }

  /** Ends the channel both ways once what was written is sent: CLOSE right behind the last DATA. */
  closeWhenWritten(): void {
    if (this.destroyed) return
    this.closeWhenSent = true
    if (this.pending.length === 0) this.destroy()
  }

  pause(): this {
    this.paused = true
    return this
  }

  resume(): this {
    if (!this.paused) return this
    this.paused = false
    while (!this.paused && this.inbox.length > 0) this.emit('data', this.inbox.shift())
    if (this.paused) return this
    if (this.unacknowledged >= CREDIT_BATCH_BYTES) this.grantCredit()
    this.deliverEnd()
    return this
  }

  /** Closes the channel (CLOSE to the peer unless it closed first); 'close' follows on the next tick. */
  destroy(error?: Error): void {
    if (this.destroyed) return
    this.destroyed = true
    this.dropPending()
    if (!this.remoteClosed && this.session.canSend(this)) this.session.sendControl(FrameType.Close, this.id)
    this.session.forget(this)
    process.nextTick(() => {
      if (error) this.emit('error', error)
      this.emit('close')
    })
  }

  private deliverEnd(): void {
    if (this.paused || this.inbox.length > 0 || !this.peerEnded || this.endEmitted) return
    this.endEmitted = true
    this.emit('end')
  }

  private grantCredit(): void {
    if (this.unacknowledged === 0 || this.destroyed) return
    this.session.sendWindow(this.id, this.unacknowledged)
    this.unacknowledged = 0
  }

  /** Sends what is pending as credit and the transport allow. */
  private send(): void {
    while (this.pending.length > 0 && !this.blocked) {
      if (this.destroyed || this.remoteClosed) return
      if (!this.session.canSend(this)) {
        // The session went (the host reset it): nobody will read these bytes.
        this.destroy(new Error('agent channel session is not connected'))
        return
      }
      if (this.credit <= 0) return // receiveWindow sends the rest
      const head = this.pending[0]!
      const size = Math.min(head.length, MAX_FRAME_PAYLOAD, this.credit)
      if (size === head.length) this.pending.shift()
      else this.pending[0] = head.subarray(size)
      this.credit -= size
      this.pendingBytes -= size
      const full = this.session.sendData(this.id, size === head.length ? head : head.subarray(0, size))
      if (full) {
        this.blocked = true
        void full.then(() => {
          this.blocked = false
          this.send()
        })
      }
    }
    if (this.pending.length > 0 || this.blocked) return
    if (this.closeWhenSent) {
      this.destroy()
      return
    }
    if (this.needDrain) {
      this.needDrain = false
      this.emit('drain')
    }
  }

  private dropPending(): void {
    this.pending.length = 0
    this.pendingBytes = 0
  }
}
