import type net from 'node:net'
import { status as grpcStatus } from '@grpc/grpc-js'
import { encodeStatus, LANE_SERVICE_PREFIX, MuxSession, SpliceEnd } from '@vmctl/agent'
import { takeFirstLine } from '../util/take-first-line.js'
import { listen } from '../util/unix-socket.js'
import { mark } from './restore-timeline.js'

/**
 * The service line of a client's kept connection for its agent calls (vm/call-connection.ts): the
 * supervisor answers RELAY_GREETING, then the connection carries mux frames without a handshake,
 * one channel per call, each spliced onto a channel of the port's session.
 */
export const CALL_RELAY_SERVICE = 'rpc-relay'
export const RELAY_GREETING = 'relay 1\n'
const REFUSED = 'the VM is stopped or going down'

/**
 * Client sockets to the guest agent: every connection to `agent.sock` (grpc-js clients) becomes
 * one channel of the host's mux session; `raw.sock` does the same for byte channels whose first
 * line names the service: every agent call on the call lane (`rpc <method>`), and the agent's raw
 * services (the benches measure the transport with them). A client's kept connection
 * (`rpc-relay`) carries all its calls, each spliced onto a channel (channel-splice.ts in the agent).
 */
export class AgentProxy {
  private readonly mux: MuxSession
  private readonly servers: net.Server[] = []
  private refusing = false

  constructor(mux: MuxSession) {
    this.mux = mux
  }

  async listen(agentSocket: string, rawSocket: string): Promise<void> {
    // Half-open for byte channels: a client that ends its side (a raw sink) still gets the answer.
    this.servers.push(await listen(agentSocket, true, (socket) => this.onClient(socket)))
    this.servers.push(await listen(rawSocket, true, (socket) => void this.onRawClient(socket)))
  }

  /** From now on, connections are closed at once (the VM is stopped or going down), until accept(). */
  refuse(): void {
    this.refusing = true
  }

  accept(): void {
    this.refusing = false
  }

  close(): void {
    this.refusing = true
    for (const server of this.servers) server.close()
  }

  /** A connection's first line names its service; what follows is the service's bytes. */
  private async onRawClient(socket: net.Socket): Promise<void> {
    socket.on('error', () => {})
    const service = await takeFirstLine(socket)
    // Gone before it said what it wants, or not a vmctl client: nothing to relay.
    if (service === undefined) return void socket.destroy()
    if (service === CALL_RELAY_SERVICE) this.onRelayClient(socket)
    else this.onClient(socket, service)
    socket.resume()
  }

  /**
   * A client's kept connection: each channel it opens is a call, spliced onto a new channel of the
   * port's session. While refusing, a call is answered UNAVAILABLE in a status (as onClient does).
   */
  private onRelayClient(socket: net.Socket): void {
    socket.setNoDelay(true)
    socket.write(RELAY_GREETING)
    const client = new MuxSession('guest', undefined, (sink, id, service) => {
      const refused = this.refusing || !service.startsWith(LANE_SERVICE_PREFIX)
      const clientEnd = new SpliceEnd(sink, id, service, true, (reason) =>
        encodeStatus(grpcStatus.UNAVAILABLE, reason),
      )
      if (refused) {
        const why = this.refusing ? REFUSED : `not a call: ${service}`
        void sink.sendData(id, encodeStatus(grpcStatus.UNAVAILABLE, why))
        // Once the session has it in its table (after this returns), so that it is forgotten too.
        process.nextTick(() => clientEnd.close())
        return clientEnd
      }
      const guestEnd = this.mux.openWith(
        (portSink, portId) => new SpliceEnd(portSink, portId, service, false),
      )
      SpliceEnd.pair(clientEnd, guestEnd)
      mark('-', `client connected: channel ${guestEnd.id}`)
      return clientEnd
    })
    client.attach(socket, { relayed: true })
    // The client's end of its connection is its leaving (there is nothing to half-close towards
    // it): without this the socket stayed half-open, one descriptor per client, for the VM's life.
    socket.once('end', () => socket.destroy())
    socket.on('error', () => socket.destroy())
  }

  private onClient(socket: net.Socket, service = ''): void {
    if (this.refusing) {
      // A lane call is told why in a status, so that its client does not take a bare close for
      // an agent without the lane (and move to gRPC for good); a gRPC client sees the close.
      if (service.startsWith(LANE_SERVICE_PREFIX)) socket.end(encodeStatus(grpcStatus.UNAVAILABLE, REFUSED))
      else socket.destroy()
      return
    }
    const channel = this.mux.openChannel(service)
    mark('-', `client connected: channel ${channel.id}`)
    // An agent call on the lane half-closes in a frame: its socket's end is the client gone, the
    // call's cancellation or its close after the status, and the channel's reset says so at once.
    const call = service.startsWith(LANE_SERVICE_PREFIX)
    if (call) socket.on('end', () => channel.destroy())
    socket.pipe(channel, { end: !call })
    channel.pipe(socket)
    socket.on('error', () => channel.destroy())
    socket.on('close', () => channel.destroy())
    // A lane call whose channel is reset (the agent restarted, the port closed, the session parked)
    // before any byte came back is told so in a status: a bare close is what an agent without the
    // lane answers, and would move the client to gRPC for good and send a unary call again.
    let answered = false
    if (call) channel.once('data', () => (answered = true))
    let told = false
    channel.on('error', (error) => {
      if (call && !answered && !socket.destroyed) {
        told = true
        socket.end(encodeStatus(grpcStatus.UNAVAILABLE, error.message))
      } else socket.destroy()
    })
    // A channel whose guest side closed after its last bytes (a call's status) has ended the
    // socket through the pipe: what the socket still holds reaches the client, which closes.
    channel.on('close', () => {
      if (!channel.readableEnded && !told) socket.destroy()
    })
  }
}
