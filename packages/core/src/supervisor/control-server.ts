import { EventEmitter } from 'node:events'
import type net from 'node:net'
import { encodeMessage, LineDecoder } from '../util/lines.js'
import { pollUntil } from '../util/timing.js'
import { listen } from '../util/unix-socket.js'
import type { ControlEvent, ControlRequest } from './control-protocol.js'
import { isAlive } from './vm-directory.js'

/** A VM nobody leased within this time was orphaned by a creator that died while starting it. */
const FIRST_LEASE_GRACE_MS = 20_000

/** One connection to the control socket. */
export interface ControlClient {
  readonly socket: net.Socket
  /** Holds a lease: the VM lives while it is connected (unless persistent). */
  lease: boolean
  /** Receives events. */
  attached: boolean
  /** Has sent a request (the switches' watches never do: see endWatches). */
  spoke?: boolean
}

/**
 * The control socket: newline-delimited JSON requests in, replies and events out (see
 * control-protocol.ts), and the leases. Emits `request` with a `reply` function for the supervisor
 * to answer, and `last-lease-gone` when the last lease holder's connection closes: for whatever
 * reason, which is what reaps the VMs of crashed test runners.
 */
export class ControlServer extends EventEmitter<{
  request: [request: ControlRequest, client: ControlClient, reply: (message: unknown) => void]
  'last-lease-gone': []
  attached: []
}> {
  private readonly clients = new Set<ControlClient>()
  private server: net.Server | undefined
  private leases = 0
  private leasedOnce = false
  private attachedOnce = false

  /** `client` attached (control-dispatch.ts, once its attach reply and catch-up are written). */
  noteAttached(client: ControlClient): void {
    client.attached = true
    this.attachedOnce = true
    this.emit('attached')
  }

  /**
   * Resolves once a client has attached, or after `ms`: a boot that fails before its creator
   * attached keeps its socket open that long, so that the creator hears why (the catch-up of its
   * attach) instead of a socket closed without a word.
   */
  untilAttached(ms: number): Promise<void> {
    if (this.attachedOnce) return Promise.resolve()
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.off('attached', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.on('attached', done)
    })
  }

  async listen(path: string): Promise<void> {
    this.server = await listen(path, false, (socket) => this.onClient(socket))
  }

  /**
   * Until the first lease, the VM belongs to the process that created it. One killed before it
   * attached (while the supervisor started) cannot close a lease: without this its VM would boot
   * and run for FIRST_LEASE_GRACE_MS (the chaos run saw 20 s). Resolves with the reason the VM is
   * orphaned, or undefined once a lease was taken (or `stop()` says stop watching).
   */
  async watchCreator(creatorPid: number, stop: () => boolean): Promise<string | undefined> {
    const verdict = await pollUntil(
      () => (this.leasedOnce || stop() ? 'leased' : !isAlive(creatorPid) && 'gone'),
      { timeoutMs: FIRST_LEASE_GRACE_MS, everyMs: 100 },
    )
    if (verdict === 'leased') return undefined
    return verdict === 'gone'
      ? 'the process that created the VM exited before attaching to it'
      : 'no process attached to the VM after it was started'
  }

  /** Gives `client` a lease (once). */
  lease(client: ControlClient): void {
    if (client.lease) return
    client.lease = true
    this.leases++
    this.leasedOnce = true
  }

  /** Sends `event` to every attached client. */
  broadcast(event: ControlEvent): void {
    for (const client of this.clients)
      if (client.attached && !client.socket.destroyed) client.socket.write(encodeMessage(event))
  }

  /**
   * Ends the connections that never sent a request: a network switch's watch (switch-server.ts
   * connects one per member and drops the member when it closes). Called as the teardown begins,
   * so that the VM's network names are free before `vmctl run` exits, not after QEMU's exit.
   */
  endWatches(): void {
    for (const client of this.clients) if (!client.spoke && !client.lease) client.socket.end()
  }

  /** Ends every connection and stops listening. */
  close(): void {
    for (const client of this.clients) client.socket.end()
    this.server?.close()
  }

  private onClient(socket: net.Socket): void {
    const client: ControlClient = { socket, lease: false, attached: false }
    this.clients.add(client)
    const decoder = new LineDecoder()
    const reply = (message: unknown) => {
      if (!socket.destroyed) socket.write(encodeMessage(message))
    }
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      for (const message of decoder.push(chunk)) {
        client.spoke = true
        this.emit('request', message as ControlRequest, client, reply)
      }
    })
    socket.on('error', () => {})
    // Not half-open: the end of the holder's side is the end of the lease.
    socket.on('close', () => {
      this.clients.delete(client)
      if (!client.lease) return
      this.leases--
      if (this.leases === 0) this.emit('last-lease-gone')
    })
  }
}
