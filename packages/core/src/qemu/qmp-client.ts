import { EventEmitter } from 'node:events'
import type net from 'node:net'
import { LineDecoder } from '../util/lines.js'
import { guestPortKey } from './guest-port.js'

interface Pending {
  resolve: (value: unknown) => void
  reject: (error: Error) => void
}

/** A minimal QMP client: capabilities negotiation, commands by id, events. */
export class QmpClient extends EventEmitter<{ event: [name: string, data: unknown]; close: [] }> {
  private readonly socket: net.Socket
  private nextId = 1
  private readonly pending = new Map<string, Pending>()
  private greeted: Promise<void>
  private closed = false

  private constructor(socket: net.Socket) {
    super()
    this.socket = socket
    let onGreeting: () => void = () => {}
    let onEarlyClose: (error: Error) => void = () => {}
    this.greeted = new Promise((resolve, reject) => {
      onGreeting = resolve
      onEarlyClose = reject
    })
    socket.setEncoding('utf8')
    const decoder = new LineDecoder()
    socket.on('data', (chunk: string) => {
      for (const message of decoder.push(chunk))
        this.onMessage(message as Record<string, unknown>, onGreeting)
    })
    socket.on('close', () => {
      this.closed = true
      onEarlyClose(new Error('QMP connection closed before QEMU greeted'))
      for (const pending of this.pending.values()) pending.reject(new Error('QMP connection closed'))
      this.pending.clear()
      this.emit('close')
    })
    socket.on('error', () => {})
  }

  /** Negotiates QMP on a connected socket (see connectWhenReady for one QEMU is still creating). */
  static async over(socket: net.Socket): Promise<QmpClient> {
    const client = new QmpClient(socket)
    await client.greeted
    await client.execute('qmp_capabilities')
    return client
  }

  /**
   * Runs a QMP command. Rejects when the connection closes before the answer, and at once when it
   * is closed already (QEMU exited, or the client was closed): a write to a closed socket fails
   * without a word, and its command would wait for an answer forever.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed || this.socket.destroyed)
      return Promise.reject(new Error(`QMP connection closed (before ${command})`))
    const id = String(this.nextId++)
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.socket.write(`${JSON.stringify({ execute: command, arguments: args, id })}\n`)
    })
  }

  /** An HMP command through QMP (for `info usernet`, which has no QMP equivalent in QEMU 7.2). */
  human(commandLine: string): Promise<string> {
    return this.execute<string>('human-monitor-command', { 'command-line': commandLine })
  }

  close(): void {
    this.socket.destroy()
  }

  private onMessage(message: Record<string, unknown>, onGreeting: () => void): void {
    if ('QMP' in message) {
      onGreeting()
      return
    }
    if ('event' in message) {
      this.emit('event', String(message.event), message.data)
      return
    }
    const id = String(message.id)
    const pending = this.pending.get(id)
    if (!pending) return
    this.pending.delete(id)
    if ('error' in message) {
      const error = message.error as { class: string; desc: string }
      pending.reject(new Error(`QMP ${error.class}: ${error.desc}`))
    } else pending.resolve(message.return)
  }
}

/**
 * Host ports of `hostfwd` rules from `info usernet`. Rules are set up with host port 0, so the
 * kernel picks a free port atomically at bind time: no allocate-then-bind race between parallel
 * VMs (virtme-ng PR #415 is what fixed ports cost).
 */
export function parseUsernetForwards(text: string): Map<string, number> {
  const forwards = new Map<string, number>()
  for (const rule of parseUsernetForwardRules(text)) forwards.set(rule.key, rule.hostPort)
  return forwards
}

/** A `hostfwd` rule: its guest port's key (guest-port.ts: "8080" for TCP, "53/udp") and host port. */
export interface UsernetForwardRule {
  key: string
  hostPort: number
}

/** Every TCP and UDP `hostfwd` rule that `info usernet` lists, in its order (a port may have several). */
export function parseUsernetForwardRules(text: string): UsernetForwardRule[] {
  const rules: UsernetForwardRule[] = []
  for (const line of text.split(/\r?\n/)) {
    const match = line.match(/(TCP|UDP)\[HOST_FORWARD\]\s+\d+\s+\S+\s+(\d+)\s+\S+\s+(\d+)/)
    if (!match) continue
    const protocol = match[1] === 'UDP' ? 'udp' : 'tcp'
    rules.push({ key: guestPortKey({ port: Number(match[3]), protocol }), hostPort: Number(match[2]) })
  }
  return rules
}
