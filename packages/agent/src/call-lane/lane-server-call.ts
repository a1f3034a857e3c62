import { EventEmitter } from 'node:events'
import { Metadata, status } from '@grpc/grpc-js'
import { encodeMessage, encodeStatus, type LaneFrame, LaneFrameReader } from './lane-frames.js'

/** What the lane needs of a method of a ts-proto service definition. */
export interface LaneMethod {
  path: string
  requestStream: boolean
  responseStream: boolean
  requestDeserialize: (bytes: Buffer) => unknown
  responseSerialize: (value: never) => Buffer
}

/**
 * The channel a call is served on: the guest's CallChannel (channel-mux/call-channel.ts), or any
 * Duplex (a test's, an older session's). Events: 'data', 'end', 'remote-close', 'drain', 'close'.
 */
export interface LaneChannel {
  // biome-ignore lint/suspicious/noExplicitAny: a stream's and an emitter's listeners take any arguments
  on(event: string, listener: (...args: any[]) => void): unknown
  write(chunk: Buffer): boolean
  destroy(): void
  pause(): unknown
  resume(): unknown
  closeWhenWritten?(): void
  cork?(): void
  uncork?(): void
}

/**
 * One call on the lane as the agent's handlers see it: shaped like grpc-js's server call objects
 * (`request`, `write` with 'drain', `end`, 'data' and 'end' of the client's messages, `pause` and
 * `resume`, 'cancelled', `emit('error', {code, details})` to fail the call), so the handlers the
 * gRPC server runs run here unchanged.
 */
export class LaneServerCall extends EventEmitter {
  request: unknown
  readonly metadata = new Metadata()
  cancelled = false
  private finished = false
  private paused = false
  private clientEnded = false
  private endEmitted = false
  private corked = false
  private readonly queue: unknown[] = []
  private firstTaker: ((message: unknown) => void) | undefined
  private readonly reader = new LaneFrameReader()

  constructor(
    private readonly channel: LaneChannel,
    private readonly method: LaneMethod,
  ) {
    super()
    channel.on('data', (chunk: Buffer) => {
      let frames: LaneFrame[]
      try {
        frames = this.reader.push(chunk)
      } catch (error) {
        this.fail(status.INTERNAL, (error as Error).message)
        return
      }
      for (const frame of frames) {
        if (frame.kind === 'status') continue // a client sends none
        if (frame.kind === 'end') {
          this.clientEnded = true
          continue
        }
        let message: unknown
        try {
          message = method.requestDeserialize(frame.payload)
        } catch (error) {
          this.fail(status.INTERNAL, `cannot parse the request: ${(error as Error).message}`)
          return
        }
        this.queue.push(message)
      }
      this.deliver()
    })
    // The client went away (see lane-frames.ts): after the status that is the call's end, before
    // it the call's cancellation. Either way the channel goes, at once: a call whose reading is
    // paused (a push into a full sink) must not wait for its sink to learn it was cancelled.
    channel.on('end', () => channel.destroy())
    channel.on('remote-close', () => channel.destroy())
    channel.on('drain', () => this.emit('drain'))
    channel.on('error', () => {})
    channel.on('close', () => {
      if (!this.finished) {
        this.finished = true
        this.cancelled = true
        super.emit('cancelled')
      }
      super.emit('close')
    })
  }

  /**
   * Calls `take` with the first message of a unary or server-streaming call as it is delivered,
   * instead of a 'data' event (undefined: the client ended without one). A callback, not a
   * promise: a promise and its microtask per call were ~2% of the agent's time for an `info()`.
   */
  takeFirstMessage(take: (message: unknown) => void): void {
    this.firstTaker = take
    this.deliver()
  }

  write(message: unknown): boolean {
    if (this.finished) return true
    return this.send(encodeMessage(this.method.responseSerialize(message as never)))
  }

  /**
   * Small frames written in one tick (a unary answer and its status, an exec's exit and its
   * status) leave as one multiplexer frame: each frame is a write to the port, a transfer to the
   * host and a wake-up of QEMU. A large one (a file chunk) is written apart: joining it would copy it.
   */
  private send(frames: Buffer[]): boolean {
    if (frames.length > 1) {
      this.uncork()
      let ok = true
      for (const frame of frames) ok = this.channel.write(frame)
      return ok
    }
    if (!this.corked && this.channel.cork) {
      this.corked = true
      this.channel.cork()
      process.nextTick(() => this.uncork())
    }
    return this.channel.write(frames[0]!)
  }

  private uncork(): void {
    if (!this.corked) return
    this.corked = false
    this.channel.uncork?.()
  }

  /** A server-streaming or bidi call's success: status OK, then the channel's end. */
  end(): void {
    this.finish(status.OK, '')
  }

  /** A unary or client-streaming call's answer (grpc-js's sendUnaryData). */
  respond(error: { code?: number; details?: string; message?: string } | null, value?: unknown): void {
    if (error) {
      this.fail(error.code ?? status.UNKNOWN, error.details ?? error.message ?? '')
      return
    }
    if (this.finished) return
    this.write(value)
    this.finish(status.OK, '')
  }

  // grpc-js ends a server stream with the status of an emitted error; handlers fail calls so.
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'error') {
      const error = args[0] as { code?: number; details?: string; message?: string } | undefined
      this.fail(error?.code ?? status.UNKNOWN, error?.details ?? error?.message ?? 'unknown error')
      return this.listenerCount('error') > 0 ? super.emit(event, ...args) : false
    }
    return super.emit(event, ...args)
  }

  pause(): this {
    this.paused = true
    this.channel.pause()
    return this
  }

  resume(): this {
    this.paused = false
    this.deliver()
    if (!this.paused) this.channel.resume()
    return this
  }

  getDeadline(): number {
    return Number.POSITIVE_INFINITY
  }

  getPeer(): string {
    return 'host'
  }

  sendMetadata(): void {}

  private deliver(): void {
    while (!this.paused && this.queue.length > 0) {
      const message = this.queue.shift()
      const take = this.firstTaker
      this.firstTaker = undefined
      if (take) take(message)
      else super.emit('data', message)
    }
    if (!this.paused && this.clientEnded && this.queue.length === 0 && !this.endEmitted) {
      this.endEmitted = true
      const take = this.firstTaker
      this.firstTaker = undefined
      take?.(undefined)
      super.emit('end')
    }
  }

  private fail(code: number, details: string): void {
    this.finish(code === status.OK ? status.UNKNOWN : code, details)
  }

  private finish(code: number, details: string): void {
    if (this.finished) return
    this.finished = true
    this.send([encodeStatus(code, details)])
    // The call is over: the channel closes behind the status, in the same write, so that the
    // guest is not woken again for the client's CLOSE. The host's end delivers every byte before
    // it goes (MuxChannel.receiveClose); a channel without closeWhenWritten is left for the
    // client to close once it read the status.
    this.channel.closeWhenWritten?.()
  }
}
