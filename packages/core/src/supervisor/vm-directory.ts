import { randomBytes } from 'node:crypto'
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { dirname, join } from 'node:path'
import { InvalidOptionsError, VmctlError } from '../errors.js'
import { ensureVmsDir, privateEntries, vmsDir } from '../paths.js'
import { LAUNCH_FILE } from '../read-launch-spec.js'
import { runtimeWriteError } from '../util/disk-full.js'
import type { VmStatus } from './control-protocol.js'
import { isSameProcess } from './process-start.js'

/** Everything one VM keeps on the host lives in one 0700 directory, removed with the VM. */
export class VmDirectory {
  private current: { name: string; path: string }
  /** Where it was before moveTo(): a link to `path` now, removed with it. */
  private former: string | undefined

  constructor(
    name: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.current = { name, path: join(vmsDir(env), name) }
  }

  get name(): string {
    return this.current.name
  }
  get path(): string {
    return this.current.path
  }

  /**
   * Renames a running VM's directory to `name` (a spare VM taken by VM.up(), vm/spare-vm.ts), and
   * leaves a link under the old name: QEMU and the supervisor's parts keep the paths they were
   * given (sockets, logs, disks), which resolve through it. Listings skip such links (isAlias),
   * and remove() removes both. Throws when `name` is taken (a directory that is not empty).
   */
  moveTo(name: string): void {
    validateVmName(name)
    const from = this.path
    const to = join(dirname(from), name)
    renameSync(from, to)
    this.current = { name, path: to }
    this.former = from
    symlinkSync(name, from)
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
    return qemuSocketsIn(this.path).port
  }
  /** QEMU's end of the guest's vmctl.setup port (served by guest-setup, see clone-refresh.c). */
  get setupSocket(): string {
    return qemuSocketsIn(this.path).setup
  }
  /** The guest CID that vsock-bridge reserved (vsock transport only). */
  get vsockCidFile(): string {
    return join(this.path, 'vsock.cid')
  }
  get qmpSocket(): string {
    return qemuSocketsIn(this.path).qmp
  }
  /** Where QEMU listens for a saved state to load (migration.ts's loadDeviceState). */
  get incomingSocket(): string {
    return join(this.path, 'state.sock')
  }
  get consoleLog(): string {
    return join(this.path, 'console.log')
  }
  get supervisorLog(): string {
    return join(this.path, 'supervisor.log')
  }
  get launchFile(): string {
    return join(this.path, LAUNCH_FILE)
  }
  /** The disks plugged into the running VM (supervisor/disk-hotplug.ts). */
  get disksFile(): string {
    return join(this.path, 'disks.json')
  }
  get statusFile(): string {
    return join(this.path, 'status.json')
  }
  /**
   * Who is making this VM, written at once by create(): the creator may spend seconds (an image
   * overlay, networks) before launch.json, and a creator killed then leaves only this to say so.
   */
  get creatorFile(): string {
    return join(this.path, 'creator.json')
  }

  /** Creates the directory; fails if a VM of this name exists (a dead one is cleared first). */
  create(): void {
    try {
      ensureVmsDir(this.env)
      mkdirSync(this.path, { mode: 0o700 })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
        throw runtimeWriteError(error, this.path, this.path)
      const status = this.readStatus()
      if ((status && isAlive(status.pid)) || (!status && !isStale(this))) {
        throw new InvalidOptionsError(
          `a VM named ${JSON.stringify(this.name)} is already running or starting; pick another name or run: vmctl down ${this.name}`,
        )
      }
      this.remove()
      mkdirSync(this.path, { mode: 0o700 })
    }
    try {
      writeFileSync(
        this.creatorFile,
        JSON.stringify({ creatorPid: process.pid, createdAt: new Date().toISOString() }),
      )
    } catch (error) {
      // A full runtime directory: nothing of this VM may stay behind in it.
      this.remove()
      throw runtimeWriteError(error, this.path, this.creatorFile)
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
    if (this.former) rmSync(this.former, { force: true })
  }
}

/** The sockets a QEMU listens on: QMP, the agent's port and the setup port. */
export interface QemuSockets {
  qmp: string
  port: string
  setup: string
}

/**
 * A QEMU's sockets in `directory`: its VM's directory, or one of their own for a QEMU started
 * before its VM was known (a spare supervisor's, supervisor/prestarted-qemu.ts).
 */
export function qemuSocketsIn(directory: string): QemuSockets {
  return {
    qmp: join(directory, 'qmp.sock'),
    port: join(directory, 'port.sock'),
    setup: join(directory, 'setup.sock'),
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
 * The VMs of this user whose supervisor runs. Changes nothing: a directory whose supervisor is
 * gone (SIGKILLed: its QEMU died with it through PR_SET_PDEATHSIG), or whose creator died before
 * starting one, is a finding of `observeHost()` (`vmctl ps`), removed by `gcHost()` (`vmctl gc`,
 * `vmctl down --all`), which say so.
 */
export function listVms(env: NodeJS.ProcessEnv = process.env): ListedVm[] {
  const listed: ListedVm[] = []
  for (const name of privateEntries(vmsDir(env))) {
    if (isAlias(vmsDir(env), name)) continue
    const directory = new VmDirectory(name, env)
    const status = directory.readStatus()
    if (status && isAlive(status.pid)) listed.push({ directory, status })
  }
  return listed.sort((a, b) => (a.status?.createdAt ?? '').localeCompare(b.status?.createdAt ?? ''))
}

/**
 * Whether `name` in the VMs' directory is the former name of a VM that was renamed (moveTo): a
 * link to a directory that exists, listed under its new name. A dangling one is not an alias: it
 * is left by a supervisor killed before its removal, and listed for gc to remove.
 */
export function isAlias(vms: string, name: string): boolean {
  try {
    return lstatSync(join(vms, name)).isSymbolicLink() && existsSync(join(vms, name))
  } catch {
    return false
  }
}

/** The name of the VM whose directory is `name`: itself, or what an alias (isAlias) links to. */
export function vmNameOf(vms: string, name: string): string {
  try {
    return lstatSync(join(vms, name)).isSymbolicLink() ? readlinkSync(join(vms, name)) : name
  } catch {
    return name
  }
}

/**
 * A directory without status whose creator is gone: the creator died before a supervisor started
 * (between mkdir and the spawn), so nothing will ever remove it. A creator that lives is not
 * stale however long it takes (an image overlay, a network-create lock, a switch starting); a pid
 * now held by a later process (started after the record) is a creator gone.
 */
export function isStale(directory: VmDirectory): boolean {
  for (const file of [directory.launchFile, directory.creatorFile]) {
    let record: { creatorPid?: number; createdAt?: string }
    try {
      record = JSON.parse(readFileSync(file, 'utf8'))
    } catch {
      continue
    }
    return !isAlive(record.creatorPid) || !isSameProcess(record.creatorPid, record.createdAt)
  }
  // Neither yet: a creator may be between mkdir and writing them; give it a minute.
  try {
    return Date.now() - statSync(directory.path).mtimeMs > 60_000
  } catch {
    return true
  }
}
