import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { VmctlError } from '../errors.js'
import { encodeMessage, LineDecoder } from '../util/lines.js'
import type { Impairment } from './switch.js'

/**
 * Requests to a network's switch process over its control socket, one JSON line each, answered by
 * one line with the same `id` (and `error` when refused). A connection that sent `hold` is a lease
 * on the network; a member joined over a connection goes with it until `bind` hands it to the VM.
 */
export type NetworkRequest = { id: string } & (
  | { op: 'hold' }
  | { op: 'join'; member: string; hostname?: string | undefined; aliases?: string[] | undefined }
  /** `nic`: the network's position among the VM's networks (its NIC, for the carrier). */
  | { op: 'bind'; member: string; vmControl: string; nic: number }
  | { op: 'leave'; member: string }
  | { op: 'members' }
  /** The names list for `member`'s setup, and which booted members still need it (switch-server.ts). */
  | { op: 'names'; member: string }
  | { op: 'connect' | 'disconnect'; member: string }
  | { op: 'partition'; groups: string[][] }
  | { op: 'heal' }
  | { op: 'impair'; member: string; impairment: Impairment }
  | { op: 'status' }
  /** Every frame entering the switch, written to the pcap file at `path` (absolute) until capture-stop. */
  | { op: 'capture'; path: string }
  | { op: 'capture-stop' }
)

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never

/** One connection to a switch: requests in, replies matched by id. */
export class NetworkClient {
  private readonly waiting = new Map<string, (message: Record<string, unknown>) => void>()
  private closed = false
  /** Why this side closed it (`close(why)`), for the error of a request made after. */
  private closedBy: string | undefined
  private weak = false

  private constructor(
    private readonly socket: net.Socket,
    private readonly network: string,
  ) {
    const decoder = new LineDecoder()
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      for (const message of decoder.push(chunk) as Array<Record<string, unknown>>) {
        const id = message.reply as string
        this.waiting.get(id)?.(message)
        this.waiting.delete(id)
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      for (const waiter of this.waiting.values()) waiter({ error: 'the network switch exited', gone: true })
      this.waiting.clear()
    })
  }

  static connect(path: string, network: string): Promise<NetworkClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(path)
      socket.once('connect', () => resolve(new NetworkClient(socket, network)))
      socket.once('error', reject)
    })
  }

  /** Resolves with the reply once the switch applied the request; rejects with its refusal. */
  async request(request: WithoutId<NetworkRequest>): Promise<Record<string, unknown>> {
    if (this.closedBy) throw new VmctlError('NETWORK_CLOSED', `network ${this.network}: ${this.closedBy}`)
    if (this.closed)
      throw new VmctlError('NETWORK_GONE', `network ${this.network} is gone (its switch exited)`)
    const id = randomBytes(6).toString('hex')
    // A reply being awaited keeps the process alive, even on an unref'd connection.
    this.socket.ref()
    const reply = await new Promise<Record<string, unknown>>((resolve) => {
      this.waiting.set(id, resolve)
      this.socket.write(encodeMessage({ ...request, id }))
    })
    if (this.weak && this.waiting.size === 0) this.socket.unref()
    if (typeof reply.error === 'string')
      throw new VmctlError(
        reply.gone ? 'NETWORK_GONE' : 'NETWORK_REQUEST',
        `network ${this.network}: ${this.closedBy ?? reply.error}`,
      )
    return reply
  }

  /** Keeps the process alive only through the socket's own activity (a lease is not a reason to stay). */
  unref(): void {
    this.weak = true
    if (this.waiting.size === 0) this.socket.unref()
  }

  /** Called once the connection ends (the switch exited, or `close()`). */
  onClose(listener: () => void): void {
    if (this.closed) listener()
    else this.socket.once('close', listener)
  }

  /** Ends the connection (and its lease); `why` is what a request made after it is told. */
  close(why = 'this connection to the switch was closed'): void {
    this.closedBy ??= why
    this.socket.destroy()
  }
}
