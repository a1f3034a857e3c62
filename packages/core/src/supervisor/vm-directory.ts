import { randomBytes } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { InvalidOptionsError, VmctlError } from '../errors.js'
import { vmsDir } from '../paths.js'
import type { VmStatus } from './control-protocol.js'

/** Everything one VM keeps on the host lives in one 0700 directory, removed with the VM. */
export class VmDirectory {
  readonly name: string
  readonly path: string

  constructor(name: string, env: NodeJS.ProcessEnv = process.env) {
    this.name = name
    this.path = join(vmsDir(env), name)
  }

  get controlSocket(): string {
    return join(this.path, 'control.sock')
  }
  /** Clients (grpc-js) connect here; each connection becomes one channel to the guest agent. */
  get agentSocket(): string {
    return join(this.path, 'agent.sock')
  }
  /** Raw byte channels to the agent, for measuring the transport (first line: the service). */
  get rawSocket(): string {
    return join(this.path, 'raw.sock')
  }
  /** QEMU's end of the virtio-serial port. */
  get portSocket(): string {
    return join(this.path, 'port.sock')
  }
  /** QEMU's end of the guest's vmctl.setup port (served by guest-setup, see clone-refresh.c). */
  get setupSocket(): string {
    return join(this.path, 'setup.sock')
  }
  /** The guest CID that vsock-bridge reserved (vsock transport only). */
  get vsockCidFile(): string {
    return join(this.path, 'vsock.cid')
  }
  get qmpSocket(): string {
    return join(this.path, 'qmp.sock')
  }
  get consoleLog(): string {
    return join(this.path, 'console.log')
  }
  get supervisorLog(): string {
    return join(this.path, 'supervisor.log')
  }
  get launchFile(): string {
    return join(this.path, 'launch.json')
  }
  /** The disks plugged into the running VM (supervisor/disk-hotplug.ts). */
  get disksFile(): string {
    return join(this.path, 'disks.json')
  }
  get statusFile(): string {
    return join(this.path, 'status.json')
  }

  /** Creates the directory; fails if a VM of this name exists (a dead one is cleared first). */
  create(): void {
    try {
      mkdirSync(this.path, { mode: 0o700 })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const status = this.readStatus()
      if ((status && isAlive(status.pid)) || (!status && !isStale(this))) {
        throw new InvalidOptionsError(
          `a VM named ${JSON.stringify(this.name)} is already running or starting; pick another name or run: vmctl down ${this.name}`,
        )
      }
      this.remove()
      mkdirSync(this.path, { mode: 0o700 })
    }
  }

  writeStatus(status: VmStatus): void {
    // rename is atomic: readers never see half a file.
    writeFileSync(`${this.statusFile}.tmp`, JSON.stringify(status))
    renameSync(`${this.statusFile}.tmp`, this.statusFile)
  }

  readStatus(): VmStatus | undefined {
    try {
      return JSON.parse(readFileSync(this.statusFile, 'utf8')) as VmStatus
    } catch {
      return undefined
    }
  }

  remove(): void {
    rmSync(this.path, { recursive: true, force: true })
  }
}

export function generateVmName(): string {
  return `vm-${randomBytes(3).toString('hex')}`
}

export function validateVmName(name: string): void {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,39}$/.test(name)) {
    throw new VmctlError(
      'INVALID_NAME',
      `invalid VM name ${JSON.stringify(name)}: use 1-40 letters, digits, '-', '_' or '.', starting with a letter or digit`,
    )
  }
}

/** Whether `pid` runs; a zombie (dead, not yet reaped by its parent) counts as dead. */
export function isAlive(pid: number | undefined): boolean {
  if (!pid) return false
  try {
    process.kill(pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return true
  }
}

export interface ListedVm {
  directory: VmDirectory
  status: VmStatus | undefined
}

/**
 * The VMs of this user. Directories whose supervisor is gone (it was SIGKILLed: its QEMU died with
 * it through PR_SET_PDEATHSIG) are removed on the way, so nothing of a crashed run outlives the
 * next vmctl command.
 */
export function listVms(env: NodeJS.ProcessEnv = process.env): ListedVm[] {
  const listed: ListedVm[] = []
  for (const name of readdirSync(vmsDir(env))) {
    const directory = new VmDirectory(name, env)
    const status = directory.readStatus()
    if (status && isAlive(status.pid)) {
      listed.push({ directory, status })
      continue
    }
    if (status || isStale(directory)) {
      // Only directories that are recognisably vmctl's are removed.
      if (existsSync(directory.launchFile) || existsSync(directory.statusFile)) directory.remove()
    }
  }
  return listed.sort((a, b) => (a.status?.createdAt ?? '').localeCompare(b.status?.createdAt ?? ''))
}

/** A directory without status for a while: its creator died before the supervisor started. */
function isStale(directory: VmDirectory): boolean {
  try {
    const launch = JSON.parse(readFileSync(directory.launchFile, 'utf8')) as {
      creatorPid?: number
      createdAt?: string
    }
    const age = Date.now() - Date.parse(launch.createdAt ?? '')
    return !isAlive(launch.creatorPid) || age > 60_000
  } catch {
    // No launch.json yet: a creator may be between mkdir and writing it; give it a minute.
    try {
      return Date.now() - statSync(directory.path).mtimeMs > 60_000
    } catch {
      return true
    }
  }
}
