import type net from 'node:net'
import { status as grpcStatus } from '@grpc/grpc-js'
import { encodeStatus, LANE_SERVICE_PREFIX, type MuxSession } from '@vmctl/agent'
import { listen } from '../util/unix-socket.js'
import { mark } from './restore-timeline.js'

/**
 * Client sockets to the guest agent: every connection to `agent.sock` (grpc-js clients) becomes
 * one channel of the host's mux session; `raw.sock` does the same for byte channels whose first
 * line names the service: every agent call on the call lane (`rpc <method>`), and the agent's raw
 * services (the benches measure the transport with them).
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
    this.servers.push(await listen(rawSocket, true, (socket) => this.onRawClient(socket)))
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

  private onRawClient(socket: net.Socket): void {
    let head = Buffer.alloc(0)
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk])
      const newline = head.indexOf(0x0a)
      if (newline < 0) return
      socket.off('data', onData)
      socket.pause()
      const rest = head.subarray(newline + 1)
      if (rest.length > 0) socket.unshift(rest)
      this.onClient(socket, head.subarray(0, newline).toString('utf8'))
      socket.resume()
    }
    socket.on('data', onData)
    socket.on('error', () => {})
  }

  private onClient(socket: net.Socket, service = ''): void {
    if (this.refusing) {
      // A lane call is told why in a status, so that its client does not take a bare close for
      // an agent without the lane (and move to gRPC for good); a gRPC client sees the close.
      if (service.startsWith(LANE_SERVICE_PREFIX))
        socket.end(encodeStatus(grpcStatus.UNAVAILABLE, 'the VM is stopped or going down'))
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
