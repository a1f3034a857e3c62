import { EventEmitter } from 'node:events'
import net from 'node:net'
import { status as grpcStatus, Metadata, type ServiceError } from '@grpc/grpc-js'
import {
  type CallChannel,
  encodeEnd,
  encodeMessage,
  LANE_SERVICE_PREFIX,
  type LaneFrame,
  LaneFrameReader,
} from '@vmctl/agent'
import type { CallConnection } from './call-connection.js'

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

/** What a call's bytes go through: a channel of the client's kept connection, or a socket of its own. */
type CallTransport = CallChannel | net.Socket

/**
 * Bytes written before the call has its transport (the kept connection not greeted yet) above
 * which write() asks the writer to wait for 'drain', as the transport itself would (a CallChannel
 * asks so above the same amount).
 */
const EARLY_HIGH_WATER_BYTES = 64 * 1024

/**
 * One agent call over the call lane (see lane-frames.ts in @vmctl/agent): a channel of the
 * client's kept connection to its supervisor (call-connection.ts), or without one a connection of
 * its own to the supervisor's raw socket, whose first line names the method; either way one
 * multiplexer channel to the guest. Shaped as grpc-js's client call objects are for vmctl's callers: 'data' for each
 * response, 'end' on success, 'error' with a ServiceError, `write` with 'drain', `end` (the
 * client's half-close), `pause`/`resume`, `cancel` (destroys the channel: the guest sees the
 * call cancelled). A deadline that passes fails the call with DEADLINE_EXCEEDED and cancels it.
 */
export class LaneClientCall extends EventEmitter {
  /** Bytes received from the guest: none when an agent without the lane closed the channel. */
  received = 0
  /** Whether the supervisor's socket took the connection (not so when the supervisor is gone). */
  connected = false
  /** Until the kept connection gives the call its channel: what was written meanwhile. */
  private socket: CallTransport | undefined
  private early: Buffer[] = []
  private earlyBytes = 0
  /** write() said false before the call had its transport: 'drain' is owed once it takes them. */
  private earlyFull = false
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
    connection?: CallConnection,
  ) {
    super()
    if (!connection) this.useSocket(socketPath)
    else
      connection.open(`${LANE_SERVICE_PREFIX}${method.path}`, (channel) => {
        if (channel) this.useTransport(channel)
        else this.useSocket(socketPath)
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

  private useSocket(socketPath: string): void {
    const socket = net.connect(socketPath)
    socket.once('connect', () => {
      this.connected = true
    })
    socket.setNoDelay(true)
    socket.write(`${LANE_SERVICE_PREFIX}${this.method.path}\n`)
    this.useTransport(socket)
  }

  private useTransport(transport: CallTransport): void {
    if (this.done) {
      transport.destroy()
      return
    }
    if (!(transport instanceof net.Socket)) this.connected = true
    this.socket = transport
    let ok = true
    for (const chunk of this.early.splice(0)) ok = transport.write(chunk)
    this.earlyBytes = 0
    if (this.earlyFull) {
      this.earlyFull = false
      // Taken at once: the writer goes on; else the transport's 'drain' (below) tells it.
      if (ok) process.nextTick(() => this.done || this.emit('drain'))
    }
    if (this.paused) transport.pause()
    transport.on('data', (chunk: Buffer) => {
      this.received += chunk.length
      try {
        this.queue.push(...this.reader.push(chunk))
      } catch (error) {
        return this.finish(laneError(grpcStatus.INTERNAL, (error as Error).message))
      }
      this.deliver()
    })
    transport.on('drain', () => this.emit('drain'))
    transport.on('error', () => {
      // A channel fails so when the kept connection itself went (closed, the supervisor gone):
      // not an agent's answer, so not one without the lane (see lane-client.ts).
      if (!(transport instanceof net.Socket)) this.connected = false
    })
    transport.on('close', () => {
      if (!this.done && this.queue.length === 0)
        this.finish(laneError(grpcStatus.UNAVAILABLE, 'the agent channel closed before the call ended'))
    })
  }

  write(message: unknown): boolean {
    if (this.done) return true
    let ok = true
    for (const frame of encodeMessage(this.method.requestSerialize(message as never))) ok = this.send(frame)
    return ok
  }

  /** The client's last message was sent (half-close, in a frame: see lane-frames.ts). */
  end(): this {
    if (!this.done) this.send(encodeEnd())
    return this
  }

  private send(frame: Buffer): boolean {
    if (this.socket) return this.socket.write(frame)
    this.early.push(frame)
    this.earlyBytes += frame.length
    if (this.earlyBytes < EARLY_HIGH_WATER_BYTES) return true
    this.earlyFull = true
    return false
  }

  cancel(): void {
    this.finish(laneError(grpcStatus.CANCELLED, 'Cancelled on client'))
  }

  /** Ends the call with `error` (its client was closed): the guest sees it cancelled. */
  abort(error: ServiceError): void {
    this.finish(error)
  }

  pause(): this {
    this.paused = true
    this.socket?.pause()
    return this
  }

  resume(): this {
    this.paused = false
    this.deliver()
    if (!this.paused) this.socket?.resume()
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
    if (!this.done && this.queue.length === 0 && this.socket?.destroyed)
      this.finish(laneError(grpcStatus.UNAVAILABLE, 'the agent channel closed before the call ended'))
  }

  private finish(error: ServiceError | null): void {
    if (this.done) return
    this.done = true
    clearTimeout(this.timer)
    this.early = []
    // After the status the guest has ended its side; closing ours frees the channel at once. A
    // channel's is closed a tick later: the guest's CLOSE, right behind its status in the same
    // read, closes it then without a CLOSE from this side.
    const transport = this.socket
    if (transport instanceof net.Socket) transport.destroy()
    else if (transport) process.nextTick(() => transport.destroy())
    if (this.onDone) this.onDone(error, this)
    else if (error) {
      if (this.listenerCount('error') > 0) this.emit('error', error)
    } else this.emit('end')
    this.emit('status', { code: error?.code ?? grpcStatus.OK, details: error?.details ?? 'OK' })
  }
}
