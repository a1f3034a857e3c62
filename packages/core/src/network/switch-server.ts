import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { isAlive } from '../supervisor/vm-directory.js'
import { encodeMessage, LineDecoder } from '../util/lines.js'
import { MemberCarrier } from './member-carrier.js'
import {
  MAX_MEMBER_INDEX,
  type MemberInfo,
  memberAddress,
  type NetworkDirectory,
  type NetworkLaunch,
} from './network-directory.js'
import type { NetworkRequest } from './network-protocol.js'
import { Switch } from './switch.js'

/** A switch that nobody leased within this time was orphaned by a creator that died starting it. */
const ORPHAN_MS = 30_000

interface Member extends MemberInfo {
  index: number
  /** The VM's supervisor control socket: when it closes, the VM is gone and so is the member. */
  watch?: net.Socket
  /** Its NIC's link, through that same socket (member-carrier.ts). */
  carrier?: MemberCarrier
  /** The newest names list (version) it was given or is being given: see the `names` request. */
  told: number
}

interface Client {
  socket: net.Socket
  lease: boolean
  /** Members this connection joined and has not bound yet: they go with the connection. */
  joining: Set<string>
}

/**
 * The network's process: the switch, its control socket, its members and its leases. It lives as
 * long as someone holds it, the same way a VM's supervisor does: a `VmNetwork` handle's connection
 * is a lease, and so is each member VM (watched through its supervisor's control socket, which
 * closes when the VM ends however it ends). When the last goes, the switch removes its directory
 * and exits; a creator that died before leasing it leaves it no longer than ORPHAN_MS.
 */
export class SwitchServer {
  private readonly switch = new Switch()
  private readonly members = new Map<string, Member>()
  private readonly clients = new Set<Client>()
  private readonly server = net.createServer((socket) => this.onClient(socket))
  private leases = 0
  private everLeased = false
  /** Bumped when a member joins or goes: guests keep the newest hosts list only (guest-network.ts). */
  private version = 0
  private stopping = false

  constructor(
    private readonly directory: NetworkDirectory,
    private readonly launch: NetworkLaunch,
  ) {}

  async run(): Promise<void> {
    mkdirSync(this.directory.portsDir, { recursive: true, mode: 0o700 })
    rmSync(this.directory.controlSocket, { force: true })
    await new Promise<void>((resolve) => this.server.listen(this.directory.controlSocket, resolve))
    this.writeState()
    const started = Date.now()
    const orphanCheck = setInterval(() => {
      if (this.everLeased) return clearInterval(orphanCheck)
      if (!isAlive(this.launch.creatorPid) || Date.now() - started > ORPHAN_MS)
        this.stop('nobody leased the network')
    }, 500)
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => this.stop(signal))
  }

  stop(reason: string): void {
    if (this.stopping) return
    this.stopping = true
    process.stderr.write(`vmctl switch ${this.launch.name}: stopping (${reason})\n`)
    this.switch.close()
    for (const member of this.members.values()) member.watch?.destroy()
    for (const client of this.clients) client.socket.destroy()
    this.server.close()
    this.directory.remove()
    process.exit(0)
  }

  private onClient(socket: net.Socket): void {
    const client: Client = { socket, lease: false, joining: new Set() }
    this.clients.add(client)
    const decoder = new LineDecoder()
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      for (const message of decoder.push(chunk)) void this.onRequest(client, message as NetworkRequest)
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.clients.delete(client)
      for (const member of client.joining) this.removeMember(member)
      if (client.lease) this.release()
    })
  }

  private hold(): void {
    this.leases++
    this.everLeased = true
    this.writeState()
  }

  private release(): void {
    this.leases--
    if (this.leases <= 0) this.stop('its last user let go')
    else this.writeState()
  }

  private async onRequest(client: Client, request: NetworkRequest): Promise<void> {
    const send = (message: Record<string, unknown>) => {
      if (!client.socket.destroyed) client.socket.write(encodeMessage({ reply: request.id, ...message }))
    }
    try {
      send((await this.handle(client, request)) ?? {})
    } catch (error) {
      send({ error: (error as Error).message })
    }
  }

  private async handle(
    client: Client,
    request: NetworkRequest,
  ): Promise<Record<string, unknown> | undefined> {
    switch (request.op) {
      case 'hold':
        if (!client.lease) {
          client.lease = true
          this.hold()
        }
        return { subnet: this.launch.subnet }
      case 'join': {
        // Checked and recorded before the first await: two joins at once (one connection's
        // requests run concurrently) must not both pass the name check, nor both take one index.
        if (this.members.has(request.member))
          throw new Error(`a VM named ${request.member} is already a member of network ${this.launch.name}`)
        // A string would spread into its letters ('db' -> d, b): refused, whoever sent it.
        const { aliases = [] } = request
        if (!Array.isArray(aliases) || aliases.some((a) => typeof a !== 'string'))
          throw new Error(
            `aliases must be an array of names, e.g. aliases: ["db"] (got ${JSON.stringify(aliases)})`,
          )
        const names = [...new Set([request.hostname ?? request.member, ...aliases])]
        for (const other of this.members.values()) {
          const taken = names.find((n) => other.names.includes(n))
          if (taken)
            throw new Error(
              `the name ${taken} is already taken on network ${this.launch.name} by ${other.member}`,
            )
        }
        const index = this.freeIndex()
        const { ip, mac } = memberAddress(this.launch.subnet, index)
        const member: Member = { member: request.member, names, ip, mac, bound: false, index, told: 0 }
        this.members.set(request.member, member)
        client.joining.add(request.member)
        const socket = this.directory.portSocket(index)
        try {
          await this.switch.addPort(request.member, socket)
        } catch (error) {
          client.joining.delete(request.member)
          if (this.members.get(request.member) === member) this.removeMember(request.member)
          throw error
        }
        this.changed()
        return { ip, mac, socket, subnet: this.launch.subnet }
      }
      case 'bind': {
        const member = this.member(request.member)
        client.joining.delete(request.member)
        const watch = net.connect(request.vmControl)
        watch.on('error', () => {})
        // By identity: a member of the same name that joined after this one went is not this one.
        watch.on('close', () => {
          if (this.members.get(request.member) === member) this.removeMember(request.member)
        })
        await new Promise<void>((resolve) => {
          watch.once('connect', resolve)
          watch.once('close', resolve)
        })
        // A supervisor that cannot be reached (it exited between the VM's start and this bind)
        // has taken the member with it: holding a lease for it would keep the switch forever.
        if (watch.destroyed || this.members.get(request.member) !== member) {
          watch.destroy()
          throw new Error(
            `VM ${request.member}'s supervisor (${request.vmControl}) cannot be reached: it exited`,
          )
        }
        member.watch = watch
        member.carrier = new MemberCarrier(watch, request.nic, request.member)
        member.bound = true
        this.hold()
        this.writeState()
        return {}
      }
      case 'leave':
        this.removeMember(request.member)
        return {}
      case 'members':
        return { version: this.version, members: [...this.members.values()].map(info) }
      case 'names': {
        // Every member's names, booted or not (each has its address from its join on), for the
        // member being set up; and the booted members that have not been given this list yet,
        // for it to tell. Both count as told from now: members that join at once, each booting,
        // get the list in their own setup instead of one more command per member joined.
        const member = this.member(request.member)
        member.told = this.version
        const behind = [...this.members.values()].filter((m) => m.bound && m.told < this.version)
        for (const m of behind) m.told = this.version
        return {
          version: this.version,
          members: [...this.members.values()].map(info),
          behind: behind.map((m) => m.member),
        }
      }
      case 'connect':
      case 'disconnect': {
        // The switch drops its frames, and the guest loses its carrier (a VM not bound yet has no
        // supervisor to ask: the switch's drop alone). Down: the drop first; up: the carrier first.
        const member = this.member(request.member)
        const up = request.op === 'connect'
        if (!up) this.switch.setConnected(member.member, false)
        await member.carrier?.set(up)
        if (up) this.switch.setConnected(member.member, true)
        break
      }
      case 'partition':
        for (const group of request.groups) for (const m of group) this.member(m)
        this.switch.partition(request.groups)
        break
      case 'heal':
        this.switch.heal()
        break
      case 'impair':
        this.switch.impair(this.member(request.member).member, request.impairment)
        break
      case 'status':
        return { state: this.state() }
      case 'capture':
        await this.switch.startCapture(request.path)
        return {}
      case 'capture-stop':
        return { frames: this.switch.stopCapture() }
      default:
        throw new Error(`unknown op ${(request as { op: string }).op}`)
    }
    this.writeState()
    return {}
  }

  /**
   * The lowest index no member holds: a member's address and port go back to the pool when it
   * leaves, so a long-lived network takes any number of joins over its life.
   */
  private freeIndex(): number {
    const used = new Set([...this.members.values()].map((m) => m.index))
    let index = 0
    while (used.has(index)) index++
    if (index > MAX_MEMBER_INDEX)
      throw new Error(
        `network ${this.launch.name} is full: it holds at most ${MAX_MEMBER_INDEX + 1} members at once. Fix: destroy members it no longer needs, or put some VMs on another network`,
      )
    return index
  }

  private member(name: string): Member {
    const member = this.members.get(name)
    if (!member) throw new Error(`the VM ${name} is not a member of network ${this.launch.name}`)
    return member
  }

  private removeMember(name: string): void {
    const member = this.members.get(name)
    if (!member) return
    this.members.delete(name)
    this.switch.removePort(name)
    member.watch?.destroy()
    this.changed()
    if (member.bound) this.release()
  }

  private changed(): void {
    this.version++
    this.writeState()
  }

  private state() {
    const ports = new Map(this.switch.states().map((p) => [p.member, p]))
    return {
      name: this.launch.name,
      pid: process.pid,
      subnet: this.launch.subnet,
      leases: this.leases,
      members: [...this.members.values()].map((m) => ({ ...info(m), port: ports.get(m.member) })),
    }
  }

  /** Atomically, so `vmctl ps` never reads half a file. */
  private writeState(): void {
    if (this.stopping) return
    const temporary = `${this.directory.stateFile}.tmp`
    writeFileSync(temporary, JSON.stringify(this.state(), null, 2))
    renameSync(temporary, this.directory.stateFile)
  }
}

function info(member: Member): MemberInfo {
  return { member: member.member, names: member.names, ip: member.ip, mac: member.mac, bound: member.bound }
}
