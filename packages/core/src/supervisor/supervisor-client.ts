import { EventEmitter } from 'node:events'
import net from 'node:net'
import { encodeMessage, LineDecoder } from '../util/lines.js'
import type { ControlEvent, ControlRequest, VmStatus } from './control-protocol.js'

/** A connection to a VM's supervisor control socket. */
export class SupervisorClient extends EventEmitter<{ event: [ControlEvent]; close: [] }> {
  private readonly socket: net.Socket
  private readonly waiters = new Map<string, Array<(message: Record<string, unknown>) => void>>()
  private closed = false
  private weak = false
  private inFlight = 0

  private constructor(socket: net.Socket) {
    super()
    this.socket = socket
    const decoder = new LineDecoder()
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      for (const message of decoder.push(chunk) as Array<Record<string, unknown>>) {
        if ('event' in message) this.emit('event', message as unknown as ControlEvent)
        else if (typeof message.reply === 'string') this.waiters.get(message.reply)?.shift()?.(message)
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      for (const list of this.waiters.values()) for (const waiter of list) waiter({ reply: 'closed' })
      this.waiters.clear()
      this.emit('close')
    })
  }

  static connect(path: string): Promise<SupervisorClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(path)
      socket.once('connect', () => resolve(new SupervisorClient(socket)))
      socket.once('error', reject)
    })
  }

  get isClosed(): boolean {
    return this.closed
  }

  /** Keeps the process alive only while someone waits on a reply. */
  unref(): void {
    this.weak = true
    if (this.inFlight === 0) this.socket.unref()
  }

  /** Keeps the process alive again (undoes unref()). */
  ref(): void {
    this.weak = false
    this.socket.ref()
  }

  async request(request: ControlRequest): Promise<Record<string, unknown>> {
    if (this.closed) return { reply: 'closed' }
    this.inFlight++
    this.socket.ref()
    return new Promise((resolve) => {
      const list = this.waiters.get(request.op) ?? []
      list.push((message) => {
        if (--this.inFlight === 0 && this.weak) this.socket.unref()
        resolve(message)
      })
      this.waiters.set(request.op, list)
      this.socket.write(encodeMessage(request))
    })
  }

  async status(): Promise<VmStatus | undefined> {
    const reply = await this.request({ op: 'status' })
    return reply.status as VmStatus | undefined
  }

  close(): void {
    this.socket.destroy()
  }
}
