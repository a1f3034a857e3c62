import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { InvalidOptionsError } from '../errors.js'
import { ensureRuntimeDir, privateEntries, runtimeDir } from '../paths.js'
import { isAlive } from '../supervisor/vm-directory.js'
import type { PortState } from './switch.js'

/** The switch's view of one member, as `state.json` and the `members` request give it. */
export interface MemberInfo {
  member: string
  /** The names it answers to on the network: its hostname (default: the VM name) and aliases. */
  names: string[]
  ip: string
  mac: string
  bound: boolean
}

/** What `state.json` holds: rewritten by the switch on every change, read by `vmctl ps`. */
export interface NetworkState {
  name: string
  pid: number
  subnet: string
  /** Who holds it: handles (in any process, the test run's keeper too) and member VMs. */
  leases: number
  members: Array<MemberInfo & { port?: PortState }>
}

/** What the creator tells the switch it starts. */
export interface NetworkLaunch {
  name: string
  subnet: string
  creatorPid: number
}

/**
 * One network on the host: a 0700 directory under the runtime directory (so two users, or two
 * runs with their own VMCTL_RUNTIME_DIR, never share one), holding the switch's control socket,
 * one socket per member port (`p/N.sock`, short: Unix socket paths are limited to 107 bytes), its
 * pid and its state. The switch removes the directory when it exits; a directory whose switch died
 * unannounced (SIGKILL) is removed by the next `listNetworks()` or create of that name.
 */
export class NetworkDirectory {
  readonly path: string

  constructor(
    readonly name: string,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.path = join(networksDir(env), name)
  }

  get controlSocket(): string {
    return join(this.path, 'control.sock')
  }
  get portsDir(): string {
    return join(this.path, 'p')
  }
  portSocket(index: number): string {
    return join(this.portsDir, `${index}.sock`)
  }
  get stateFile(): string {
    return join(this.path, 'state.json')
  }
  get logFile(): string {
    return join(this.path, 'switch.log')
  }

  /** Written by the creator before the switch starts. */
  get launchFile(): string {
    return join(this.path, 'network.json')
  }

  readLaunch(): NetworkLaunch {
    return JSON.parse(readFileSync(this.launchFile, 'utf8')) as NetworkLaunch
  }

  readState(): NetworkState | undefined {
    try {
      return JSON.parse(readFileSync(this.stateFile, 'utf8')) as NetworkState
    } catch {
      return undefined
    }
  }

  remove(): void {
    rmSync(this.path, { recursive: true, force: true })
  }
}

/** The networks' directories. Only computed, as runtimeDir(). */
export function networksDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(runtimeDir(env), 'networks')
}

export function ensureNetworksDir(env: NodeJS.ProcessEnv = process.env): string {
  ensureRuntimeDir(env)
  mkdirSync(networksDir(env), { recursive: true, mode: 0o700 })
  return networksDir(env)
}

/** The running networks; directories left by a switch that died unannounced are removed. */
export function listNetworks(env: NodeJS.ProcessEnv = process.env): NetworkState[] {
  const states: NetworkState[] = []
  for (const name of privateEntries(networksDir(env))) {
    const directory = new NetworkDirectory(name, env)
    const state = directory.readState()
    if (state && isAlive(state.pid)) states.push(state)
    else if (!state && isYoung(directory))
      continue // being created: its switch writes state soon
    else directory.remove()
  }
  return states
}

function isYoung(directory: NetworkDirectory): boolean {
  try {
    return isAlive(directory.readLaunch().creatorPid)
  } catch {
    return false
  }
}

/**
 * A /24 per network, 10.213.N.0/24, N not used by another live network of this runtime directory:
 * a VM on two networks must not get the same subnet twice. (The subnets of two users' networks may
 * be the same: they never share a VM.) Called under the networks' creation lock.
 */
export function freeSubnet(env: NodeJS.ProcessEnv = process.env): string {
  const used = new Set(listNetworks(env).map((n) => n.subnet))
  for (const dir of privateEntries(networksDir(env))) {
    try {
      used.add(new NetworkDirectory(dir, env).readLaunch().subnet)
    } catch {}
  }
  for (let n = 0; n < 256; n++) {
    const subnet = `10.213.${n}.0/24`
    if (!used.has(subnet)) return subnet
  }
  throw new InvalidOptionsError(
    'all 256 network subnets are in use; destroy some networks (vmctl ps shows them)',
  )
}

/** Names a user picks: they become a directory and part of a lock name. */
export function validateNetworkName(name: string): void {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,39}$/.test(name))
    throw new InvalidOptionsError(
      `network name ${JSON.stringify(name)} is not valid: use up to 40 letters, digits, ".", "_" or "-", starting with a letter or digit`,
    )
}

/** Member addresses run from .10 (index 0) to .250. */
export const MAX_MEMBER_INDEX = 240

/** A member's address and MAC on a subnet: index 0 is .10. MACs are locally administered (02:…),
 * unique per subnet and index, so no two members of any two networks share one. */
export function memberAddress(subnet: string, index: number): { ip: string; mac: string } {
  const [a, b, c] = subnet.split('.').map(Number) as [number, number, number]
  if (index > MAX_MEMBER_INDEX)
    throw new InvalidOptionsError(`a network holds at most ${MAX_MEMBER_INDEX + 1} members`)
  const hex = (n: number) => n.toString(16).padStart(2, '0')
  return {
    ip: `${a}.${b}.${c}.${10 + index}`,
    mac: `02:76:6d:${hex(c)}:${hex(index >> 8)}:${hex(index & 255)}`,
  }
}
