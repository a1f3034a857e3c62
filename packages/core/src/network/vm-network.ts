import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { VmctlError } from '../errors.js'
import { lockIn, withLock } from '../host/cross-process-lock.js'
import { askKeeperToHold } from '../host/shared-keeper-client.js'
import { logger } from '../log.js'
import { isAlive } from '../supervisor/vm-directory.js'
import { pollUntil } from '../util/timing.js'
import {
  ensureNetworksDir,
  freeSubnet,
  type MemberInfo,
  NetworkDirectory,
  validateNetworkName,
} from './network-directory.js'
import { NetworkClient } from './network-protocol.js'
import { type Impairment, impairmentProblem } from './switch.js'

const log = logger('network')

export interface VmNetworkOptions {
  /**
   * Share the network by name: every process (test worker) that creates a network of this name
   * gets the same one, which lives until the last of them and of its member VMs lets go. Without
   * a name the network is this handle's own.
   */
  name?: string
}

/** Anything with a VM's name: a `VM` handle, or the name itself. */
export type MemberRef = { readonly name: string } | string

/**
 * A virtual Ethernet network between VMs: a subnet, an address and a MAC per member, names that
 * resolve in every member, and faults on demand. Rootless: a switch process of vmctl's own in user
 * space (no bridge, tap or root), with one Unix socket per member that the member's QEMU connects
 * to. See docs/networks.md.
 *
 * @example
 * ```ts
 * await using net = await VmNetwork.create()
 * await using db = await VM.up({ networks: [{ network: net, hostname: 'db' }] })
 * await using app = await VM.up({ networks: [net] })
 * await app.exec('ping -c 1 db')
 * await net.partition([db], [app]) // and net.heal()
 * ```
 */
/** A capture running on a network (`net.capture(path)`). */
export interface NetworkCapture {
  /** The pcap file, absolute. */
  readonly path: string
  /** Ends the capture once the file is whole; resolves with how many frames it holds. */
  stop(): Promise<{ frames: number }>
  [Symbol.asyncDispose](): Promise<void>
}

export class VmNetwork implements AsyncDisposable {
  private constructor(
    readonly name: string,
    /** The network's IPv4 subnet, e.g. "10.213.0.0/24". */
    readonly subnet: string,
    private readonly client: NetworkClient,
    /** @internal */
    readonly directory: NetworkDirectory,
  ) {}

  /** Starts a network (or, given a name in use, joins that one) and holds it until `close()`. */
  static async create(options: VmNetworkOptions = {}): Promise<VmNetwork> {
    const name = options.name ?? `net-${randomBytes(4).toString('hex')}`
    validateNetworkName(name)
    const directory = new NetworkDirectory(name)
    if (Buffer.byteLength(directory.portSocket(999)) > 107)
      throw new VmctlError(
        'PATH_TOO_LONG',
        `network socket paths would be too long (${directory.portSocket(999)}); set VMCTL_RUNTIME_DIR to a shorter directory, or use a shorter network name`,
      )
    // The hold goes after the lock, so the switch found under it can lose its last lease before
    // the hold arrives (it then exits): one more try finds no switch and starts a new one.
    for (let attempt = 1; ; attempt++) {
      // One lock for every network of this runtime directory: it makes a name's switch start once
      // and keeps two new networks from taking the same subnet.
      const client = await withLock(lockIn(ensureNetworksDir(), 'vmctl-network-create'), async () => {
        const existing = await NetworkClient.connect(directory.controlSocket, name).catch(() => undefined)
        if (existing) return existing
        return startSwitch(directory)
      })
      try {
        const { subnet } = await client.request({ op: 'hold' })
        client.unref()
        log('%s: holding (%s)', name, subnet)
        return new VmNetwork(name, subnet as string, client, directory)
      } catch (error) {
        client.close()
        if (attempt >= 2 || (error as VmctlError).code !== 'NETWORK_GONE') throw error
        log('%s: its switch exited as we joined; once more', name)
      }
    }
  }

  /**
   * The network called `name`, shared by every process of a test run that asks for it, as
   * `VM.upShared()` is for VMs: the first creates it, the others join it. Under the test adapters'
   * global setup (`@vmctl/vitest/global-setup`, `@vmctl/jest/global-setup`) the run holds it until
   * it ends, so every file and worker sees one network (one subnet); elsewhere it lives while a
   * handle or a member VM holds it. A VM joins it by name too: `VM.up({ networks: ['name'] })`.
   */
  static async shared(name: string): Promise<VmNetwork> {
    const network = await VmNetwork.create({ name })
    await askKeeperToHold(name, 'network')
    return network
  }

  /** Its members, their names and addresses, as the switch has them now. */
  async members(): Promise<MemberInfo[]> {
    const { members } = await this.client.request({ op: 'members' })
    return members as MemberInfo[]
  }

  /**
   * Takes the member's link down: it neither sends nor receives on this network until `connect()`,
   * and its guest sees the NIC without carrier (`ip link`: NO-CARRIER), as with a cable pulled.
   */
  async disconnect(vm: MemberRef): Promise<void> {
    await this.client.request({ op: 'disconnect', member: memberName(vm) })
  }

  /** Brings a member's link (and its guest's carrier) back up after `disconnect()`. */
  async connect(vm: MemberRef): Promise<void> {
    await this.client.request({ op: 'connect', member: memberName(vm) })
  }

  /**
   * Splits the network: members of different groups no longer reach each other (frames between
   * them are dropped, those in flight included); members in no group still reach everyone. A new
   * partition replaces the previous one. Undo with `heal()`.
   */
  async partition(...groups: MemberRef[][]): Promise<void> {
    await this.client.request({ op: 'partition', groups: groups.map((g) => g.map(memberName)) })
  }

  /** Ends a partition: every member reaches every other again. */
  async heal(): Promise<void> {
    await this.client.request({ op: 'heal' })
  }

  /**
   * Latency and loss on a member's link, applied to the frames it sends (as `tc netem` on its NIC
   * would): a ping to it from another member shows `delayMs` more round trip. `{}` clears them.
   */
  async impair(vm: MemberRef, impairment: Impairment): Promise<void> {
    checkImpairment(impairment)
    await this.client.request({ op: 'impair', member: memberName(vm), impairment })
  }

  /**
   * Writes every frame the network's members send to a pcap file at `path` (for Wireshark or
   * `tcpdump -r`), as they enter the switch: also those a partition, a loss or a down link then
   * drops. Stop it with the handle's `stop()` (or the end of its `await using`), which resolves
   * once the file is whole; the network's end stops it too. One capture at a time per network.
   */
  async capture(path: string): Promise<NetworkCapture> {
    const file = resolve(path)
    await this.client.request({ op: 'capture', path: file })
    let stopped: Promise<{ frames: number }> | undefined
    const stop = () => {
      stopped ??= this.client
        .request({ op: 'capture-stop' })
        .then((reply) => ({ frames: Number(reply.frames) }))
      return stopped
    }
    return { path: file, stop, [Symbol.asyncDispose]: async () => void (await stop()) }
  }

  /** @internal The switch connection, for joining VMs. */
  get control(): NetworkClient {
    return this.client
  }

  /**
   * Lets go of this handle's hold on the network. It ends when nothing holds it any more: no
   * handle in any process and no member VM.
   */
  async close(): Promise<void> {
    this.client.close(
      'this VmNetwork handle was closed (close(), or the end of its await using). Fix: use the network before closing it, or VmNetwork.create({ name }) again for a new handle',
    )
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

/** A member's address on a network, from the state the switch keeps on disk (any process, sync). */
export function memberAddressOf(network: VmNetwork | string, member: string): string {
  const name = typeof network === 'string' ? network : network.name
  const state = new NetworkDirectory(name).readState()
  const found = state?.members.find((m) => m.member === member)
  if (!found)
    throw new VmctlError(
      'NOT_A_MEMBER',
      `VM ${member} is not on network ${name}${state ? '' : ' (no such network is running)'}. Fix: pass the network in VM.up({ networks: [net] })`,
    )
  return found.ip
}

function memberName(vm: MemberRef): string {
  return typeof vm === 'string' ? vm : vm.name
}

function checkImpairment(impairment: Impairment): void {
  const problem = impairmentProblem(impairment)
  if (problem) throw new VmctlError('INVALID_OPTIONS', problem)
}

/** @internal Exported for its test: `timeoutMs` and `mainPath` stand in for a switch that hangs. */
export async function startSwitch(
  directory: NetworkDirectory,
  { timeoutMs = 30_000, mainPath = switchMainPath() } = {},
): Promise<NetworkClient> {
  if (existsSync(directory.path)) directory.remove() // its switch is gone: nothing answered
  // Before the directory exists: looking for a free subnet clears directories with no network.json.
  const subnet = freeSubnet()
  mkdirSync(directory.path, { recursive: true, mode: 0o700 })
  writeFileSync(
    directory.launchFile,
    JSON.stringify({ name: directory.name, subnet, creatorPid: process.pid }),
  )
  const logFd = openSync(directory.logFile, 'a', 0o600)
  const child = spawn(process.execPath, [mainPath, directory.path], {
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: { ...process.env, NODE_OPTIONS: undefined, NODE_EXTRA_CA_CERTS: undefined },
  })
  closeSync(logFd)
  child.on('error', () => {})
  child.unref()
  const client = await pollUntil(() => NetworkClient.connect(directory.controlSocket, directory.name), {
    timeoutMs,
    everyMs: 20,
    stopIf: () => child.exitCode !== null || !isAlive(child.pid),
  })
  if (client) return client
  // A switch still starting would live on without its directory, and stopping later it would
  // remove the directory of a newer switch of the same name.
  const hung = child.exitCode === null && isAlive(child.pid)
  if (hung && child.pid !== undefined) {
    try {
      process.kill(child.pid, 'SIGKILL')
    } catch {}
  }
  let logText = ''
  try {
    logText = readFileSync(directory.logFile, 'utf8').trim().split('\n').slice(-10).join('\n')
  } catch {}
  directory.remove()
  throw new VmctlError(
    'SWITCH_FAILED',
    `the switch of network ${directory.name} did not start${hung ? ` within ${timeoutMs / 1000} s` : ''}:\n${logText}`,
  )
}

/** The compiled switch entry, in dist/ even when this module runs from src/ under a TS test runner. */
function switchMainPath(): string {
  const dist = fileURLToPath(new URL('..', import.meta.url)).replace(/\/src\/$/, '/dist/')
  const entry = join(dist, 'network', 'switch-main.js')
  if (existsSync(entry)) return entry
  throw new VmctlError(
    'NOT_BUILT',
    `vmctl's network switch is not built (${entry} is missing). Fix: pnpm build`,
  )
}
