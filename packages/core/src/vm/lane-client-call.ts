import { EventEmitter } from 'node:events'
import net from 'node:net'
import { status as grpcStatus, Metadata, type ServiceError } from '@grpc/grpc-js'
import { encodeEnd, encodeMessage, LANE_SERVICE_PREFIX, type LaneFrame, LaneFrameReader } from '@vmctl/agent'

/** What the client needs of a method of a ts-proto service definition. */
export interface LaneClientMethod {
  path: string
  requestSerialize: (value: never) => Buffer
  responseDeserialize: (bytes: Buffer) => unknown
}

/** A failed call, shaped as grpc-js's (code, details, metadata) so callers map it the same way. */
export function laneError(code: number, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${grpcStatus[code]}: ${details}`), {
    code,
    details,
    metadata: new Metadata(),
  })
}

/**
 * One agent call over the call lane (see lane-frames.ts in @vmctl/agent): a connection to the
 * supervisor's raw socket, whose first line names the method, becomes one multiplexer channel to
 * the guest. Shaped as grpc-js's client call objects are for vmctl's callers: 'data' for each
 * response, 'end' on success, 'error' with a ServiceError, `write` with 'drain', `end` (the
 * client's half-close), `pause`/`resume`, `cancel` (destroys the channel: the guest sees the
 * call cancelled). A deadline that passes fails the call with DEADLINE_EXCEEDED and cancels it.
 */
export class LaneClientCall extends EventEmitter {
  /** Bytes received from the guest: none when an agent without the lane closed the channel. */
  received = 0
  /** Whether the supervisor's socket took the connection (not so when the supervisor is gone). */
  connected = false
  private readonly socket: net.Socket
  private readonly reader = new LaneFrameReader()
  private readonly queue: Array<LaneFrame> = []
  private paused = false
  private done = false
  private timer: NodeJS.Timeout | undefined

  constructor(
    socketPath: string,
    private readonly method: LaneClientMethod,
    deadline: Date | number | undefined,
    private readonly onDone?: (error: ServiceError | null, call: LaneClientCall) => void,
  ) {
    super()
    this.socket = net.connect(socketPath)
    this.socket.once('connect', () => {
      this.connected = true
    })
    this.socket.setNoDelay(true)
    this.socket.write(`${LANE_SERVICE_PREFIX}${method.path}\n`)
    this.socket.on('data', (chunk: Buffer) => {
      this.received += chunk.length
      try {
        this.queue.push(...this.reader.push(chunk))
      } catch (error) {
        return this.finish(laneError(grpcStatus.INTERNAL, (error as Error).message))
      }
      this.deliver()
    })
    this.socket.on('drain', () => this.emit('drain'))
    this.socket.on('error', () => {})
    this.socket.on('close', () => {
      if (!this.done && this.queue.length === 0)
        this.finish(laneError(grpcStatus.UNAVAILABLE, 'the agent channel closed before the call ended'))
    })
    if (deadline !== undefined) {
      const ms = (typeof deadline === 'number' ? deadline : deadline.getTime()) - Date.now()
      if (Number.isFinite(ms))
        this.timer = setTimeout(
          () => this.finish(laneError(grpcStatus.DEADLINE_EXCEEDED, 'Deadline exceeded')),
          Math.max(0, ms),
        )
    }
  }

  write(message: unknown): boolean {
    if (this.done) return true
    let ok = true
    for (const frame of encodeMessage(this.method.requestSerialize(message as never)))
      ok = this.socket.write(frame)
    return ok
  }

  /** The client's last message was sent (half-close, in a frame: see lane-frames.ts). */
  end(): this {
    if (!this.done) this.socket.write(encodeEnd())
    return this
  }

  cancel(): void {
    this.finish(laneError(grpcStatus.CANCELLED, 'Cancelled on client'))
  }

  pause(): this {
    this.paused = true
    this.socket.pause()
    return this
  }

  resume(): this {
    this.paused = false
    this.deliver()
    if (!this.paused) this.socket.resume()
    return this
  }

  private deliver(): void {
    while (!this.paused && !this.done && this.queue.length > 0) {
      const frame = this.queue.shift()!
      if (frame.kind === 'end') continue // a server sends none
      if (frame.kind === 'status') {
        this.finish(frame.code === grpcStatus.OK ? null : laneError(frame.code, frame.details))
        return
      }
      let message: unknown
      try {
        message = this.method.responseDeserialize(frame.payload)
      } catch (error) {
        this.finish(laneError(grpcStatus.INTERNAL, `cannot parse the response: ${(error as Error).message}`))
        return
      }
      this.emit('data', message)
    }
    if (!this.done && this.queue.length === 0 && this.socket.destroyed)
      this.finish(laneError(grpcStatus.UNAVAILABLE, 'the agent channel closed before the call ended'))
  }

  private finish(error: ServiceError | null): void {
    if (this.done) return
    this.done = true
    clearTimeout(this.timer)
    // After the status the guest has ended its side; closing ours frees the channel at once.
    this.socket.destroy()
    if (this.onDone) this.onDone(error, this)
    else if (error) {
      if (this.listenerCount('error') > 0) this.emit('error', error)
    } else this.emit('end')
    this.emit('status', { code: error?.code ?? grpcStatus.OK, details: error?.details ?? 'OK' })
  }
}
