import { rmSync } from 'node:fs'
import net from 'node:net'
import { PacketCapture } from './packet-capture.js'

/** Link faults on one member, applied like `tc netem` on its NIC: to the frames it sends. */
export interface Impairment {
  delayMs?: number
  jitterMs?: number
  lossPercent?: number
}

/** A frame held longer than this is as good as lost; and timers past 2^31 ms would fire at once. */
export const MAX_DELAY_MS = 60_000

/**
 * Why an impairment is not valid, or undefined when it is: checked by the caller (VmNetwork) and
 * again by the switch, which must never take a value that breaks forwarding.
 */
export function impairmentProblem(impairment: Impairment): string | undefined {
  for (const [key, value] of Object.entries(impairment)) {
    const ok =
      (key === 'delayMs' || key === 'jitterMs' || key === 'lossPercent') &&
      typeof value === 'number' &&
      Number.isFinite(value) &&
      value >= 0 &&
      (key !== 'lossPercent' || value <= 100)
    if (!ok)
      return `impair: ${key}=${JSON.stringify(value)} is not valid; use delayMs, jitterMs (milliseconds, >= 0) and lossPercent (0-100)`
  }
  const { delayMs = 0, jitterMs = 0 } = impairment
  if (delayMs + jitterMs > MAX_DELAY_MS)
    return `impair: delayMs + jitterMs is ${delayMs + jitterMs}; at most ${MAX_DELAY_MS} ms (a minute) is supported`
  return undefined
}

/** What the switch knows of one member: its port, and the faults on its link. */
export interface PortState {
  member: string
  connected: boolean
  /** Index of the partition group it is in, or undefined: it reaches every member. */
  group: number | undefined
  impair: Impairment
  framesIn: number
  framesDropped: number
}

/**
 * One member's port: a Unix stream socket that the member's QEMU connects to (`-netdev stream`),
 * carrying Ethernet frames each behind a 4-byte big-endian length, QEMU's framing. Several QEMU
 * processes connect one after another over a VM's life (the one that makes a template, then the
 * one restored from it), so the newest connection is the port's.
 */
class Port {
  readonly state: PortState
  connection: net.Socket | undefined
  private readonly server: net.Server
  private pending: Buffer = Buffer.alloc(0)

  constructor(
    member: string,
    readonly path: string,
    private readonly onFrame: (port: Port, frame: Buffer) => void,
  ) {
    this.state = { member, connected: true, group: undefined, impair: {}, framesIn: 0, framesDropped: 0 }
    this.server = net.createServer((socket) => this.accept(socket))
  }

  listen(): Promise<void> {
    rmSync(this.path, { force: true })
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.path, () => resolve())
    })
  }

  private accept(socket: net.Socket): void {
    this.connection?.destroy()
    this.connection = socket
    this.pending = Buffer.alloc(0)
    socket.on('error', () => {})
    socket.on('close', () => {
      if (this.connection === socket) this.connection = undefined
    })
    socket.on('data', (chunk: Buffer) => {
      this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk
      while (this.pending.length >= 4) {
        const length = this.pending.readUInt32BE(0)
        if (this.pending.length < 4 + length) break
        const frame = this.pending.subarray(4, 4 + length)
        this.pending = this.pending.subarray(4 + length)
        this.state.framesIn++
        // One bad frame (or a bug in forwarding it) must never end the network: an exception here
        // would reach the switch process's uncaughtException, which stops it for every member.
        try {
          this.onFrame(this, frame)
        } catch (error) {
          this.state.framesDropped++
          process.stderr.write(`vmctl switch: a frame from ${this.state.member} dropped: ${error}\n`)
        }
      }
    })
  }

  /** Writes a frame, or drops it when QEMU is not reading (a full queue, as a real switch does). */
  send(frame: Buffer): void {
    const socket = this.connection
    if (!socket || socket.writableLength > 4 * 1024 * 1024) return
    const header = Buffer.alloc(4)
    header.writeUInt32BE(frame.length, 0)
    socket.write(Buffer.concat([header, frame]))
  }

  close(): void {
    this.connection?.destroy()
    this.server.close()
    rmSync(this.path, { force: true })
  }
}

/**
 * A learning Ethernet switch in user space, with faults: a member's link can be down, members can
 * be split into groups that do not reach each other, and a member's outgoing frames can be delayed
 * (with jitter) and lost. Every fault is checked when a frame is delivered, not when it was sent,
 * so a frame still in a delay line when a partition starts is dropped too: a fault is in force for
 * every frame once the call that set it returns.
 */
export class Switch {
  private readonly ports = new Map<string, Port>()
  /** Source MAC (as hex) → the port it was last seen on. */
  private readonly macs = new Map<string, Port>()
  private partitioned = false
  /** Where every frame entering the switch is written, while a capture runs (packet-capture.ts). */
  private capture: PacketCapture | undefined

  async addPort(member: string, path: string): Promise<void> {
    if (this.ports.has(member)) return
    const port = new Port(member, path, (from, frame) => this.forward(from, frame))
    this.ports.set(member, port)
    await port.listen()
  }

  removePort(member: string): void {
    const port = this.ports.get(member)
    if (!port) return
    port.close()
    this.ports.delete(member)
    for (const [mac, owner] of this.macs) if (owner === port) this.macs.delete(mac)
  }

  states(): PortState[] {
    return [...this.ports.values()].map((p) => ({ ...p.state, impair: { ...p.state.impair } }))
  }

  setConnected(member: string, connected: boolean): void {
    this.port(member).state.connected = connected
  }

  /** Members of different groups stop reaching each other; members in no group reach everyone. */
  partition(groups: string[][]): void {
    for (const port of this.ports.values()) port.state.group = undefined
    for (const [index, group] of groups.entries()) for (const m of group) this.port(m).state.group = index
    this.partitioned = true
  }

  heal(): void {
    for (const port of this.ports.values()) port.state.group = undefined
    this.partitioned = false
  }

  impair(member: string, impairment: Impairment): void {
    const problem = impairmentProblem(impairment)
    if (problem) throw new Error(problem)
    this.port(member).state.impair = { ...impairment }
  }

  /** Starts writing every frame that enters the switch to a pcap file at `path` (one capture at a time). */
  async startCapture(path: string): Promise<void> {
    if (this.capture) throw new Error(`a capture is running already, to ${this.capture.path}: stop it first`)
    this.capture = new PacketCapture(path)
  }

  /** Ends the capture; resolves with how many frames it wrote. */
  stopCapture(): number {
    const capture = this.capture
    this.capture = undefined
    if (!capture) throw new Error('no capture is running')
    return capture.stop()
  }

  close(): void {
    try {
      this.capture?.stop()
    } catch {} // the network ends: nobody is left to tell
    this.capture = undefined
    for (const member of [...this.ports.keys()]) this.removePort(member)
  }

  private port(member: string): Port {
    const port = this.ports.get(member)
    if (!port) throw new Error(`${member} is not a member of this network`)
    return port
  }

  private forward(from: Port, frame: Buffer): void {
    if (frame.length < 14) return
    this.capture?.record(frame)
    const destination = frame.subarray(0, 6)
    this.macs.set(frame.subarray(6, 12).toString('hex'), from)
    // Group bit set: broadcast or multicast, flooded (no IGMP snooping: every member hears it).
    const known = destination[0]! & 1 ? undefined : this.macs.get(destination.toString('hex'))
    const targets = known
      ? known === from
        ? []
        : [known]
      : [...this.ports.values()].filter((p) => p !== from)
    if (targets.length === 0) return
    const { delayMs = 0, jitterMs = 0, lossPercent = 0 } = from.state.impair
    if (lossPercent > 0 && Math.random() * 100 < lossPercent) {
      from.state.framesDropped++
      return
    }
    // Uniform in ±jitterMs, fractions too (a timer takes any delay; 0 or less sends at once).
    const delay = delayMs + (jitterMs > 0 ? (Math.random() * 2 - 1) * jitterMs : 0)
    // The frame's bytes belong to the port's read buffer: copy them before it is reused.
    const copy = delay > 0 ? Buffer.from(frame) : frame
    const deliver = () => {
      for (const target of targets) {
        if (this.reaches(from, target)) target.send(copy)
        else from.state.framesDropped++
      }
    }
    if (delay > 0) setTimeout(deliver, delay)
    else deliver()
  }

  private reaches(from: Port, to: Port): boolean {
    if (!this.ports.has(from.state.member) || !this.ports.has(to.state.member)) return false
    if (!from.state.connected || !to.state.connected) return false
    if (!this.partitioned) return true
    const a = from.state.group
    const b = to.state.group
    return a === undefined || b === undefined || a === b
  }
}
