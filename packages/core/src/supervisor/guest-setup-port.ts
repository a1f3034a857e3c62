import { randomBytes } from 'node:crypto'
import type net from 'node:net'
import { LineSplitter } from '../util/lines.js'
import { connectWhenReady } from '../util/unix-socket.js'

/** What the guest's refresh did. */
export interface RefreshResult {
  /** How far the guest clock was stepped to reach the host's time. */
  clockStepMs: number
}

/** The guest could not mount its root (guest-setup's reason). */
export class RootMountError extends Error {}

/**
 * The host end of the guest's `vmctl.setup` port, served by guest-setup
 * (packages/agent/native/clone-refresh.c): one line per request, one line per answer, in order.
 *
 *   host  → `REFRESH id unix_time_ns hostname entropy_hex modules`   guest → `OK id clock_step_ns` | `ERR id text`
 *   host  → `ROOT id`                                         guest → `OK id` | `ERR id reason`
 *
 * The supervisor stays connected from QEMU's start: a template or snapshot is then saved with the
 * port's host side connected, and a VM restored from it with the host connected before its state
 * loads sees no change on the port: guest-setup, blocked in read(), wakes on the first request.
 */
export class GuestSetupPort {
  private readonly socket: net.Socket
  /** A line longer than 4 KiB is not the protocol's: dropped (see LineSplitter). */
  private readonly lines = new LineSplitter(4096)
  private received = 0
  private readonly waiting = new Map<string, (line: string) => void>()

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      this.received += chunk.length
      for (const line of this.lines.push(chunk)) {
        const id = line.split(' ')[1] ?? ''
        this.waiting.get(id)?.(line)
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      for (const answer of this.waiting.values()) answer('ERR - the setup port closed (QEMU exited)')
    })
  }

  /** Connects to QEMU's end of the port, retrying while QEMU creates it; undefined once `alive` says no. */
  static async connect(path: string, alive: () => boolean): Promise<GuestSetupPort | undefined> {
    const socket = await connectWhenReady(path, alive, 10)
    return socket && new GuestSetupPort(socket)
  }

  /** Bytes the guest sent on the port so far: a sign of life (hung-guest-watch.ts). */
  get bytesReceived(): number {
    return this.received
  }

  /**
   * Makes a restored guest its own: its clock stepped to the host's time (taken as the request is
   * sent), 64 bytes of host entropy credited and the kernel RNG reseeded, `hostname` set; then a
   * deferred root mount starts. `modulesDir`, the host path of the guest kernel's module tree, is
   * where the root mount finds it now: a template's kernel command line names where it was on the
   * host that made the template, which may be another (a CI cache restored under another $HOME).
   * Rejects with the guest's reason, or when `signal` aborts.
   */
  async refresh(hostname: string, signal: AbortSignal, modulesDir?: string): Promise<RefreshResult> {
    const nowNs = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n
    // One field of a space-separated line (the kernel command line cannot carry such a path either).
    const modules = modulesDir && !/\s/.test(modulesDir) && modulesDir.length < 1024 ? modulesDir : '-'
    const [verdict, ...rest] = await this.request(
      (id) => `REFRESH ${id} ${nowNs} ${hostname} ${randomBytes(64).toString('hex')} ${modules}`,
      signal,
    )
    if (verdict !== 'OK') throw new Error(`the guest could not refresh itself: ${rest.join(' ')}`)
    return { clockStepMs: Math.round(Number(rest[0]) / 1e6) || 0 }
  }

  /**
   * Resolves once the guest's root for commands is mounted (at once for a VM without one). Rejects
   * with a RootMountError carrying guest-setup's reason when the mount failed.
   */
  async rootReady(signal: AbortSignal): Promise<void> {
    const [verdict, ...rest] = await this.request((id) => `ROOT ${id}`, signal)
    if (verdict !== 'OK') throw new RootMountError(rest.join(' '))
  }

  /** Sends one request line; resolves with the answer's verdict and the words after its id. */
  private request(line: (id: string) => string, signal: AbortSignal): Promise<string[]> {
    const id = randomBytes(6).toString('hex')
    return new Promise<string[]>((resolve, reject) => {
      const finish = () => {
        this.waiting.delete(id)
        signal.removeEventListener('abort', aborted)
      }
      const aborted = () => {
        finish()
        reject(signal.reason)
      }
      if (signal.aborted) return aborted()
      signal.addEventListener('abort', aborted)
      this.waiting.set(id, (answer) => {
        finish()
        const [verdict = '', , ...rest] = answer.split(' ')
        resolve([verdict, ...rest])
      })
      this.socket.write(`${line(id)}\n`)
    })
  }

  close(): void {
    this.socket.destroy()
  }
}
