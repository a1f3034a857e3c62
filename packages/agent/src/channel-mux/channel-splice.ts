import { EventEmitter } from 'node:events'
import type { ChannelSink } from './channel-sink.js'
import { FrameType } from './frame-codec.js'

/**
 * One end of a splice: a channel of one session whose frames go on, as they came, on the paired
 * channel of another session. A supervisor relays each call of a client's kept connection so
 * (the client's session on a Unix socket, the guest's on the port): one table look-up and one frame
 * written per frame, where a connection per call cost an accept, a socket, a Node Duplex for the
 * channel and two pipes. Flow control stays end to end: WINDOW frames pass through too, so the
 * client and the guest each send only what the other granted, and the splice holds nothing but
 * what the guest's end receives before its OPEN went out (the port's session not yet ready).
 */
export class SpliceEnd extends EventEmitter {
  destroyed = false
  /** Bytes that came in on this end. */
  received = 0
  private other: SpliceEnd | undefined
  private isOpen: boolean
  private held: Array<(end: SpliceEnd) => void> | undefined

  /**
   * `open`: frames may be sent at once (the end a peer's OPEN made); a host end waits for its
   * session to send OPEN (opened()). `onLost`: what to send the peer of this end, before CLOSE,
   * when the other end is dropped by its session (a reset) before anything came in on it.
   */
  constructor(
    private readonly sink: ChannelSink,
    readonly id: number,
    readonly service: string,
    open: boolean,
    private readonly onLost?: (reason: string) => Buffer | undefined,
  ) {
    super()
    this.isOpen = open
    // A session passes its reset's reason only to a channel that listens for errors; this one
    // never emits any, it hands the reason on (onLost).
    this.on('error', () => {})
  }

  /** Pairs two ends: what comes in on one goes out on the other. */
  static pair(a: SpliceEnd, b: SpliceEnd): void {
    a.other = b
    b.other = a
  }

  /** @internal */
  opened(): void {
    this.isOpen = true
    const held = this.held
    this.held = undefined
    for (const step of held ?? []) step(this)
  }

  /** @internal */
  receive(data: Buffer): void {
    this.received += data.length
    this.other?.send((end) => void end.sink.sendData(end.id, data))
  }

  /** @internal */
  receiveEnd(): void {
    this.other?.send((end) => end.sink.sendControl(FrameType.End, end.id))
  }

  /** @internal */
  receiveWindow(bytes: number): void {
    this.other?.send((end) => end.sink.sendWindow(end.id, bytes))
  }

  /** @internal The peer closed this end: the other end closes too. */
  receiveClose(): void {
    if (this.destroyed) return
    this.finish()
    this.other?.close()
  }

  /** @internal Its session dropped this end (a reset, its transport gone): the other end closes. */
  destroy(error?: Error): void {
    if (this.destroyed) return
    if (this.sink.canSend(this)) this.sink.sendControl(FrameType.Close, this.id)
    this.finish()
    const other = this.other
    if (!other || other.destroyed) return
    const lost =
      this.received === 0 ? other.onLost?.(error?.message ?? 'the agent channel was reset') : undefined
    if (lost) other.send((end) => void end.sink.sendData(end.id, lost))
    other.close()
  }

  /** Sends CLOSE to this end's peer (after what is held for its OPEN) and forgets the channel. */
  close(): void {
    if (this.destroyed) return
    if (!this.isOpen) {
      // Never opened: the peer knows nothing of it, nothing to close.
      this.finish()
      return
    }
    this.sink.sendControl(FrameType.Close, this.id)
    this.finish()
  }

  private send(step: (end: SpliceEnd) => void): void {
    if (this.destroyed) return
    if (!this.isOpen) {
      this.held ??= []
      this.held.push(step)
    }
    // A session that is not ready (going down) drops the channel itself; nothing to send then.
    else if (this.sink.canSend(this)) step(this)
  }

  private finish(): void {
    this.destroyed = true
    this.held = undefined
    this.sink.forget(this)
  }
}
