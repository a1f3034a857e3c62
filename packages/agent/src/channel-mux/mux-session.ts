import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import type { CallChannel } from './call-channel.js'
import { acceptOpen, type ChannelMaker, openFrame, type SessionChannel } from './channel-open.js'
import type { ChannelSink, MuxRole } from './channel-sink.js'
import { ChannelTable } from './channel-table.js'
import { encodeFrame, encodeWindow, type Frame, FrameType } from './frame-codec.js'
import { FrameOutbox } from './frame-outbox.js'
import { encodeHandshakeLine, type HandshakeLine } from './handshake-lines.js'
import { InboundReader } from './inbound-reader.js'
import { MuxChannel } from './mux-channel.js'
import { assertTransportHighWater } from './transport-high-water.js'

const HELLO_INTERVAL_MS = 100
// How long a guest believed parked gets to answer GO before the ordinary handshake starts. A
// restored guest answers late on a loaded host (3-7 s), and a fresh handshake only adds lines for it
// to work through: with 3 s, 5 of 16 such restores started over (docs/first-command.md).
const PARKED_SYNC_MS = 10_000
const AGENT_UP_INTERVAL_MS = 500

type SessionState = 'detached' | 'syncing' | 'go-sent' | 'ready' | 'parking'

export interface MuxSessionEvents {
  /** Both ends agreed on a fresh session; channels flow. */
  ready: []
  /** The session was lost (peer restarted, transport replaced); open channels were destroyed. */
  reset: [reason: string]
  /** guest only: the host opened a channel; `service` is "" for gRPC, or a raw service name. */
  channel: [channel: Duplex, service: string]
  /** guest only: the host opened a channel for one call (`callService` said so). */
  call: [channel: CallChannel, service: string]
  /**
   * guest only: the host is parking the session (a snapshot is next); listeners run before PARKED
   * goes out (the channels' own cleanup, scheduled by the reset, runs after: the host's wait for a
   * quiet guest covers what that starts).
   */
  parking: []
}

/**
 * One end of the channel multiplexer over a single byte transport (a virtio-serial port, a vsock
 * connection). The host opens channels; the guest receives them. The transport can be replaced
 * (`attach`) without losing the session object: a guest reopens its port after the host
 * disconnects, a host reconnects after a snapshot restore.
 *
 * This file is the session's state and its handshake (handshake-lines.ts), and what each frame
 * means; the parts it drives: InboundReader splits the peer's bytes into lines and frames,
 * FrameOutbox writes frames and lines and holds senders while the transport is full, ChannelTable
 * keeps the channels by id. A channel's own flow control (credit) is in mux-channel.ts and
 * call-channel.ts.
 */
export class MuxSession extends EventEmitter<MuxSessionEvents> implements ChannelSink {
  readonly role: MuxRole
  private transport: Duplex | undefined
  /** Every write to `transport` goes through it, so frames keep their order. */
  private outbox: FrameOutbox | undefined
  private state: SessionState = 'detached'
  private nonce = ''
  private timer: NodeJS.Timeout | undefined
  private readonly channels = new ChannelTable()
  private readonly reader = new InboundReader({
    line: (line) => this.onHandshakeLine(line),
    frame: (frame) => this.onFrame(frame),
    dataChannel: (id) => this.channels.get(id),
    lostSync: (reason) => this.lostSync(reason),
  })
  private readonly agentId = randomBytes(4).toString('hex')
  private parked: (() => void) | undefined
  /** attach(…, { relayed }): a stream between two host processes, no handshake (see attach). */
  private relayed = false

  /**
   * guest: `callService(service)` true makes the channel a CallChannel (no Node stream: a call's
   * request and answer) announced by 'call' instead of 'channel'. `makeChannel`: every OPEN's
   * channel is made by it and not announced (a supervisor splicing its clients' calls onto the
   * port's session: channel-splice.ts).
   */
  constructor(
    role: MuxRole,
    private readonly callService?: (service: string) => boolean,
    private readonly makeChannel?: ChannelMaker,
  ) {
    super()
    this.role = role
  }

  get isReady(): boolean {
    return this.state === 'ready'
  }

  /** A transport is in use (the session may still be syncing). */
  get isAttached(): boolean {
    return this.transport !== undefined
  }

  get openChannels(): number {
    return this.channels.size
  }

  /**
   * Starts using `transport`; any previous one is dropped along with its session. Host side, with
   * `peerParked` (the guest is known to wait for a HELLO: restored from a snapshot taken after
   * park()), GO follows HELLO at once, saving the round trip of waiting for OK; should the guest
   * not answer within PARKED_SYNC_MS, the ordinary handshake starts over.
   *
   * `relayed`: the transport is a Unix socket between a vmctl client and its VM's supervisor, who
   * relays the client's channels to the guest (channel-splice.ts). Nothing there restarts or
   * loses bytes, so there is no handshake: both ends are ready at once, and bytes that are not a
   * frame end the session.
   */
  attach(transport: Duplex, options: { peerParked?: boolean; relayed?: boolean } = {}): void {
    assertTransportHighWater(transport)
    this.detach('transport replaced')
    this.transport = transport
    this.outbox = new FrameOutbox(transport)
    this.reader.clear()
    transport.on('data', this.reader.push)
    const lost = () => {
      if (this.transport === transport) this.detach('transport closed')
    }
    transport.once('close', lost)
    transport.once('end', lost)
    transport.on('error', lost)
    this.relayed = options.relayed ?? false
    if (this.relayed) this.becomeReady()
    else if (this.role === 'host') this.startSync(options.peerParked ?? false)
    else this.announceAgent()
  }

  /** Stops using the current transport and drops every channel that was already open. */
  detach(reason: string): void {
    const transport = this.transport
    if (!transport) return
    this.transport = undefined
    // Wakes the senders waiting for the transport to drain: they find the session gone.
    this.outbox?.drop()
    this.outbox = undefined
    transport.off('data', this.reader.push)
    this.clearTimer()
    this.resetChannels(reason)
    this.state = 'detached'
    this.parked?.()
  }

  /**
   * Host side: ends the session but keeps the transport, and resolves once the guest has
   * acknowledged (true) or after `timeoutMs` (false). The guest then waits idle for a HELLO: the
   * state to snapshot a VM in, with the host still connected, so the guest never sees its host
   * leave. `attach` (the same transport or a new one) starts the next session.
   */
  park(timeoutMs: number): Promise<boolean> {
    const transport = this.transport
    if (this.role !== 'host' || !transport || this.state !== 'ready') {
      this.detach('parked')
      return Promise.resolve(false)
    }
    this.resetChannels('the host parked the session')
    const nonce = randomBytes(8).toString('hex')
    this.nonce = nonce
    this.outbox?.writeNow(encodeFrame(FrameType.Park, 0, Buffer.from(nonce, 'latin1')))
    this.state = 'parking'
    this.reader.clear()
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => finish(false), timeoutMs)
      const finish = (acknowledged: boolean) => {
        clearTimeout(timer)
        this.parked = undefined
        this.detach('parked')
        resolve(acknowledged)
      }
      this.parked = () => finish(true)
    })
  }

  /**
   * Host side: the peer went away without the transport noticing (the guest agent process died:
   * QEMU reports the port closing). Drops the open channels at once and starts a new session
   * that the restarted agent will join.
   */
  resetPeer(reason: string): void {
    if (this.role !== 'host' || !this.transport) return
    this.resetChannels(reason)
    this.startSync()
  }

  /** Host side: a new channel. Usable at once; its bytes flow when the session is ready. */
  openChannel(service = ''): MuxChannel {
    return this.openWith((sink, id) => new MuxChannel(sink, id, service))
  }

  /**
   * Host side: a new channel made by `make`: a CallChannel (a client's call, when the session is
   * ready: it sends at once), or one end of a splice. Its opened() is called once OPEN is sent.
   */
  openWith<T extends SessionChannel>(make: (sink: ChannelSink, id: number) => T): T {
    if (this.role !== 'host') throw new Error('only the host opens channels')
    const channel = make(this, this.channels.takeId())
    const ready = this.state === 'ready'
    this.channels.add(channel, ready)
    if (ready) this.sendOpen(channel)
    return channel
  }

  // The five methods below are the ChannelSink contract (channel-sink.ts), for MuxChannel only.
  sendData(channel: number, payload: Buffer): Promise<void> | undefined {
    const outbox = this.outbox
    if (!outbox || this.state !== 'ready') throw new Error('agent channel session is not connected')
    return outbox.sendData(channel, payload)
  }

  canSend(channel: SessionChannel): boolean {
    return this.state === 'ready' && this.channels.isAnnounced(channel)
  }

  sendControl(type: FrameType, channel: number, payload?: Buffer): void {
    if (this.state !== 'ready') return
    this.outbox?.write(encodeFrame(type, channel, payload))
  }

  sendWindow(channel: number, bytes: number): void {
    if (this.state !== 'ready') return
    // At once, not at the end of the turn: a sender out of credit waits for it (a pull's guest).
    this.outbox?.writeNow(encodeWindow(channel, bytes))
  }

  forget(channel: SessionChannel): void {
    this.channels.forget(channel)
  }

  /** The reader is back to lines. False: the transport was let go (a relayed one). */
  private lostSync(reason: string): boolean {
    if (this.relayed) {
      // Nothing on a relayed socket resynchronises: the bytes are dropped and the socket ended,
      // so that the peer sees it close (a client then connects afresh) instead of a session
      // that stays detached on an open socket, or a reader that decodes the same bytes forever.
      const transport = this.transport
      this.reader.clear()
      this.detach(reason)
      transport?.destroy()
      return false
    }
    if (this.state === 'ready' || this.state === 'go-sent') {
      this.resetChannels(reason)
      if (this.role === 'host') this.startSync()
      else {
        this.state = 'syncing'
        this.announceAgent()
      }
    }
    return this.transport !== undefined
  }

  private onHandshakeLine(line: HandshakeLine): void {
    if (this.role === 'host') {
      if (line.kind === 'ok' && this.state === 'syncing' && line.nonce === this.nonce) {
        this.clearTimer()
        this.state = 'go-sent'
        this.writeRaw(encodeHandshakeLine({ kind: 'go', nonce: this.nonce }))
      } else if (line.kind === 'ready' && this.state === 'go-sent' && line.nonce === this.nonce) {
        this.becomeReady()
      } else if (line.kind === 'parked' && this.state === 'parking' && line.nonce === this.nonce) {
        this.parked?.()
      } else if (line.kind === 'agent-up' && this.state !== 'syncing' && this.state !== 'parking') {
        this.resetChannels('the guest agent restarted')
        this.startSync()
      }
      return
    }
    if (line.kind === 'hello') {
      this.clearTimer()
      this.writeRaw(encodeHandshakeLine({ kind: 'ok', nonce: line.nonce }))
    } else if (line.kind === 'go') {
      this.clearTimer()
      this.resetChannels('the host started a new session')
      this.nonce = line.nonce
      this.writeRaw(encodeHandshakeLine({ kind: 'ready', nonce: line.nonce }))
      this.reader.expectFrames()
      this.state = 'ready'
      this.emit('ready')
    }
  }

  private onFrame(frame: Frame): void {
    const existing = this.channels.get(frame.channel)
    switch (frame.type) {
      case FrameType.Open: {
        if (this.role !== 'guest' || existing) return
        const service = frame.payload.toString('utf8')
        const opened = acceptOpen(this, frame.channel, service, this.callService, this.makeChannel)
        this.channels.add(opened.channel, true)
        if (opened.kind === 'made') return
        if (opened.kind === 'call') this.emit('call', opened.channel, service)
        else this.emit('channel', opened.channel, service)
        return
      }
      case FrameType.Data:
        existing?.receive(frame.payload)
        return
      case FrameType.End:
        existing?.receiveEnd()
        return
      case FrameType.Close:
        existing?.receiveClose()
        return
      case FrameType.Window:
        if (frame.payload.length === 4) existing?.receiveWindow(frame.payload.readUInt32BE(0))
        return
      case FrameType.Park: {
        if (this.role !== 'guest') return
        const nonce = frame.payload.toString('latin1')
        this.resetChannels('the host parked the session')
        this.clearTimer()
        this.reader.expectLines()
        this.state = 'syncing'
        this.emit('parking')
        this.writeRaw(encodeHandshakeLine({ kind: 'parked', nonce }))
        return
      }
    }
  }

  private becomeReady(): void {
    this.clearTimer()
    this.reader.expectFrames()
    this.state = 'ready'
    this.channels.announceWaiting((channel) => this.sendOpen(channel))
    this.emit('ready')
  }

  private sendOpen(channel: SessionChannel): void {
    this.outbox?.write(openFrame(channel))
    channel.opened()
  }

  private startSync(peerParked = false): void {
    this.clearTimer()
    this.state = 'syncing'
    this.reader.expectLines()
    this.nonce = randomBytes(8).toString('hex')
    const hello = encodeHandshakeLine({ kind: 'hello', nonce: this.nonce })
    this.writeRaw(hello)
    if (peerParked) {
      this.state = 'go-sent'
      this.writeRaw(encodeHandshakeLine({ kind: 'go', nonce: this.nonce }))
      this.timer = setTimeout(() => this.startSync(), PARKED_SYNC_MS)
    } else {
      this.timer = setInterval(() => this.writeRaw(hello), HELLO_INTERVAL_MS)
    }
    this.timer.unref()
  }

  private announceAgent(): void {
    this.clearTimer()
    if (this.state === 'detached') this.state = 'syncing'
    const up = encodeHandshakeLine({ kind: 'agent-up', nonce: this.agentId })
    this.writeRaw(up)
    this.timer = setInterval(() => this.writeRaw(up), AGENT_UP_INTERVAL_MS)
    this.timer.unref()
  }

  private writeRaw(bytes: Buffer): void {
    this.outbox?.writeLine(bytes)
  }

  private clearTimer(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }

  private resetChannels(reason: string): void {
    const wasReady = this.state === 'ready' || this.state === 'go-sent'
    this.channels.removeAnnounced((channel) => {
      // An error nobody listens for would crash the process; a plain close says enough then.
      channel.destroy(
        channel.listenerCount('error') > 0 ? new Error(`agent channel reset: ${reason}`) : undefined,
      )
    })
    if (wasReady) this.emit('reset', reason)
  }
}
