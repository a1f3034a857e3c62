import net from 'node:net'
import { CallChannel, MuxSession } from '@vmctl/agent'
import { CALL_RELAY_SERVICE, RELAY_GREETING } from '../supervisor/agent-proxy.js'
import { takeFirstLine } from '../util/take-first-line.js'

/** Gets a channel for one call, or undefined: that call then takes a connection of its own. */
type Use = (channel: CallChannel | undefined) => void

/**
 * How long calls take connections of their own after the supervisor closed the kept connection
 * before its greeting, the first time; doubled at each such close in a row, up to the most. A
 * supervisor without the relay does so every time (one extra connect per period, against ~1.5 ms
 * of host CPU per call saved when the relay is there); one that closed it for a passing reason
 * (its process ended as it took the connection, and a VM of the same name took its place) gets
 * its relay used again.
 */
const RELAY_RETRY_FIRST_MS = 1_000
const RELAY_RETRY_MOST_MS = 60_000

/**
 * A client's kept connection to its VM's supervisor, for all its agent calls on the call lane
 * (lane-client-call.ts): a call is one channel on it, which the supervisor splices onto a channel
 * to the guest (agent-proxy.ts). A connection per call cost the supervisor an accept, a socket,
 * a Node stream for the channel and two pipes, and the caller a connect: ~1.5 ms of host CPU per
 * call on a loaded host (docs/call-lane-costs.md). Made on the first call; calls made before the
 * supervisor greets wait for it. A supervisor without the relay (an older vmctl's, attached by
 * name) closes it without a greeting: the calls that waited for it then connect on their own, as
 * before, and so do the next ones for a while (RELAY_RETRY_FIRST_MS, doubled at every such close
 * in a row); then a call tries the kept connection again.
 *
 * The socket keeps the process alive only while a call is open on it.
 */
export class CallConnection {
  private socket: net.Socket | undefined
  private session: MuxSession | undefined
  private state: 'none' | 'connecting' | 'ready' = 'none'
  private waiting: Array<() => void> = []
  private closed = false
  /** Closed before its greeting: calls connect on their own until then (Date.now()). */
  private alone = { until: 0, nextMs: 0 }

  constructor(private readonly socketPath: string) {}

  /** Calls `use` with a channel for a call of `service` (`rpc <method path>`), now or once greeted. */
  open(service: string, use: Use): void {
    if (this.closed) use(undefined)
    else if (this.state === 'ready') use(this.openNow(service))
    else if (this.state === 'none' && Date.now() < this.alone.until) use(undefined)
    else this.queue(service, use)
  }

  private queue(service: string, use: Use): void {
    this.waiting.push(() => use(this.state === 'ready' ? this.openNow(service) : undefined))
    if (this.state === 'none') this.connect()
  }

  /** Closes the connection; calls from now on connect on their own (nothing stays open). */
  close(): void {
    this.closed = true
    this.socket?.destroy()
  }

  private openNow(service: string): CallChannel {
    const session = this.session!
    const socket = this.socket!
    const channel = session.openWith((sink, id) => new CallChannel(sink, id, service))
    socket.ref()
    channel.once('close', () => {
      if (this.socket === socket && session.openChannels === 0) socket.unref()
    })
    return channel
  }

  private connect(): void {
    this.state = 'connecting'
    const socket = net.connect(this.socketPath)
    this.socket = socket
    socket.setNoDelay(true)
    let connected = false
    socket.on('connect', () => {
      connected = true
    })
    socket.on('error', () => {})
    void takeFirstLine(socket).then((greeting) => {
      // Anything but the greeting (a close before it, included) is a supervisor without the relay:
      // the close below tells the waiting calls.
      if (`${greeting}\n` !== RELAY_GREETING) return void socket.destroy()
      const session = new MuxSession('host')
      session.attach(socket, { relayed: true })
      socket.resume()
      this.session = session
      this.alone = { until: 0, nextMs: 0 }
      this.settle('ready')
      if (session.openChannels === 0) socket.unref()
    })
    socket.on('close', () => {
      if (this.socket !== socket) return
      this.socket = undefined
      this.session = undefined
      // Closed before its greeting, having taken it: a supervisor without the relay, or one that
      // went as it took the connection. The calls that waited connect on their own, and so do the
      // next ones for a while; one that is gone (not connected) may be replaced at once (a
      // restarted VM of the same name).
      if (this.state === 'connecting') {
        if (connected) {
          const ms = this.alone.nextMs || RELAY_RETRY_FIRST_MS
          this.alone = { until: Date.now() + ms, nextMs: Math.min(ms * 2, RELAY_RETRY_MOST_MS) }
        }
        this.settle('none')
      } else if (this.state === 'ready') this.state = 'none'
    })
    socket.write(`${CALL_RELAY_SERVICE}\n`)
  }

  private settle(state: 'ready' | 'none'): void {
    this.state = state
    for (const wake of this.waiting.splice(0)) wake()
  }
}
