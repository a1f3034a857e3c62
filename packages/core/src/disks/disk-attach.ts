import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { credentials, status as grpcStatus, Metadata, type ServiceError } from '@grpc/grpc-js'
import { type AgentClient, DevicesClient, type GuestDisk } from '@vmctl/agent'
import type { AttachedDisk } from '../supervisor/disk-hotplug.js'
import type { SupervisorClient } from '../supervisor/supervisor-client.js'
import { DiskError, type DiskErrorCode } from './disk-error.js'
import { vmsUsingDisk } from './disks-dir.js'
import { VmDisk } from './vm-disk.js'

export interface AttachDiskOptions {
  /** The guest sees a write-protected disk (and QEMU opens the file read-only). */
  readOnly?: boolean
  /** The SCSI serial (1-20 of letters, digits, "-", "_", "."), which names /dev/disk/by-id/…. */
  serial?: string
  /** How long the guest gets to see the disk. Default 30 s. */
  timeoutMs?: number
}

/** Where a plugged disk is in the guest. */
export interface DiskAttachment {
  path: string
  serial: string
  readOnly: boolean
  /** The kernel's name, such as "sda". */
  name: string
  /** `/dev/sda`: can change between attaches; prefer `byIdPath`. */
  devicePath: string
  /** `/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_<serial>`, stable for a serial. */
  byIdPath: string
  sizeBytes: number
}

/** What the disk functions need of a VM handle. */
export interface DiskVmContext {
  name: string
  control: SupervisorClient
  agent: () => AgentClient
  /** A stopped VM has no guest to ask: a detach only takes the disk off its list. */
  stopped?: () => boolean
}

const DEFAULT_TIMEOUT_MS = 30_000
const SERIAL = /^[A-Za-z0-9._-]{1,20}$/

/**
 * Plugs `disk` into the running VM and resolves once the guest kernel has it. QEMU's side (a
 * scsi-hd on the VM's virtio-scsi controller) and the guest agent's watch run at once; a disk the
 * guest has not seen within the bound is unplugged again.
 */
export async function attachDisk(
  vm: DiskVmContext,
  disk: VmDisk | string,
  options: AttachDiskOptions = {},
): Promise<DiskAttachment> {
  const { path, format } = typeof disk === 'string' ? VmDisk.open(disk) : disk
  if (!existsSync(path))
    throw new DiskError(
      'DISK_NOT_FOUND',
      path,
      `cannot attach ${path} to VM ${vm.name}: the file does not exist. Fix: create it with VmDisk.create({ path, sizeMiB }) or \`vmctl disk create\``,
    )
  const serial = options.serial ?? `vmctl-${randomBytes(4).toString('hex')}`
  if (!SERIAL.test(serial))
    throw new DiskError(
      'DISK_ATTACH_FAILED',
      path,
      `a disk serial is 1-20 letters, digits, ".", "_" or "-", not ${JSON.stringify(serial)}`,
    )
  const readOnly = !!options.readOnly
  const holders = vmsUsingDisk(path).filter((u) => u.vm !== vm.name && (!u.readOnly || !readOnly))
  if (holders.length)
    throw new DiskError(
      'DISK_IN_USE',
      path,
      `cannot attach ${path} to VM ${vm.name}: VM ${holders[0]!.vm} has it attached${holders[0]!.readOnly ? ' read-only' : ' read-write'}, and two VMs writing one disk corrupt it. Fix: detach it there first (vmctl disk detach ${holders[0]!.vm} ${path}), or attach it read-only in both`,
    )
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const devices = devicesClient(vm)
  const seen = waitDisk(devices, serial, timeoutMs)
  seen.catch(() => {})
  const reply = await vm.control.request({ op: 'attach-disk', path, format, readOnly, serial })
  if (reply.ok !== true) {
    seen.cancel()
    throw failure(vm, path, reply)
  }
  let guest: GuestDisk
  try {
    guest = await seen
  } catch (error) {
    await vm.control.request({ op: 'detach-disk', path })
    const code = (error as ServiceError).code
    if (code === grpcStatus.DEADLINE_EXCEEDED)
      throw new DiskError(
        'DISK_TIMEOUT',
        path,
        `VM ${vm.name}'s guest did not see ${path} (serial ${serial}) within ${timeoutMs} ms, so it was unplugged again. Cause: a guest kernel without virtio_scsi and sd_mod (a custom kernel needs CONFIG_SCSI_VIRTIO and CONFIG_BLK_DEV_SD), or a guest too busy to handle the hot-plug. Fix: such a kernel, or a larger timeoutMs`,
        { cause: error },
      )
    throw new DiskError(
      'DISK_ATTACH_FAILED',
      path,
      `VM ${vm.name}'s agent could not watch for ${path}: ${(error as ServiceError).details ?? (error as Error).message}`,
      { cause: error },
    )
  }
  return {
    path,
    serial,
    readOnly,
    name: guest.name,
    devicePath: guest.devicePath,
    byIdPath: guest.byIdPath,
    sizeBytes: guest.sizeBytes,
  }
}

/**
 * Unplugs `disk` and resolves once it is gone from the guest and from QEMU. A disk mounted in the
 * guest is refused unless `force` (its filesystem would lose what it has not written).
 */
export async function detachDisk(
  vm: DiskVmContext,
  disk: VmDisk | string,
  options: { force?: boolean; timeoutMs?: number } = {},
): Promise<void> {
  const path = typeof disk === 'string' ? resolve(disk) : disk.path
  const attached = await listDisks(vm)
  const record = attached.find((d) => d.path === path)
  if (!record)
    throw new DiskError(
      'DISK_NOT_ATTACHED',
      path,
      `cannot detach ${path} from VM ${vm.name}: it is not attached to it (attached: ${attached.length ? attached.map((d) => d.path).join(', ') : 'none'})`,
    )
  if (vm.stopped?.()) {
    const reply = await vm.control.request({ op: 'detach-disk', path })
    if (reply.ok !== true) throw failure(vm, path, reply)
    return
  }
  const devices = devicesClient(vm)
  const { mountPoints } = await unary<{ mountPoints: string[] }>((done) =>
    devices.prepareDiskRemoval({ serial: record.serial, timeoutMs: 0 }, new Metadata(), done),
  )
  if (mountPoints.length && !options.force)
    throw new DiskError(
      'DISK_MOUNTED',
      path,
      `cannot detach ${path} from VM ${vm.name}: it is mounted in the guest at ${mountPoints.join(', ')}. Fix: unmount it first (vm.exec('umount ${mountPoints[0]}')), or detachDisk(disk, { force: true }) to pull it anyway`,
    )
  const gone = unary((done) =>
    devices.waitDiskGone(
      { serial: record.serial, timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS },
      new Metadata(),
      done,
    ),
  )
  gone.catch(() => {})
  const reply = await vm.control.request({ op: 'detach-disk', path })
  if (reply.ok !== true) throw failure(vm, path, reply)
  try {
    await gone
  } catch (error) {
    throw new DiskError(
      'DISK_TIMEOUT',
      path,
      `QEMU unplugged ${path}, but VM ${vm.name}'s guest still had it after the bound: ${(error as ServiceError).details ?? (error as Error).message}`,
      { cause: error },
    )
  }
}

/** The disks plugged into the VM, as its supervisor knows them. */
export async function listDisks(vm: DiskVmContext): Promise<AttachedDisk[]> {
  const reply = await vm.control.request({ op: 'disks' })
  if (reply.ok !== true) throw failure(vm, '', reply)
  return reply.disks as AttachedDisk[]
}

/** A Devices client on the agent client's own connection (no second HTTP/2 handshake). */
function devicesClient(vm: DiskVmContext): DevicesClient {
  const agent = vm.agent()
  return new DevicesClient('unix:///unused', credentials.createInsecure(), {
    channelOverride: agent.getChannel(),
  })
}

function waitDisk(
  devices: DevicesClient,
  serial: string,
  timeoutMs: number,
): Promise<GuestDisk> & { cancel(): void } {
  let call: { cancel(): void } | undefined
  const promise = new Promise<GuestDisk>((resolve, reject) => {
    call = devices.waitDisk(
      { serial, timeoutMs },
      new Metadata(),
      // The agent's own bound answers first; this one covers an agent that never answers.
      { deadline: new Date(Date.now() + timeoutMs + 10_000) },
      (error, response) => (error ? reject(error) : resolve(response!)),
    )
  })
  return Object.assign(promise, { cancel: () => call?.cancel() })
}

function unary<T = unknown>(
  start: (done: (error: ServiceError | null, response?: T) => void) => void,
): Promise<T> {
  return new Promise((resolve, reject) =>
    start((error, response) => (error ? reject(error) : resolve(response as T))),
  )
}

const FIXES: Partial<Record<DiskErrorCode, string>> = {
  DISK_IN_USE:
    'Fix: detach it from the VM that has it (vmctl disk ls shows which), or attach it read-only there and here',
  DISK_CORRUPT: 'Fix: `qemu-img check` shows what is wrong; restore the file from a copy',
  VM_NOT_READY: 'Fix: wait for the VM to be ready (VM.up() resolves then)',
}

function failure(vm: DiskVmContext, path: string, reply: Record<string, unknown>): DiskError {
  if (reply.reply === 'closed') return new DiskError('VM_NOT_READY', path, `VM ${vm.name} has exited`)
  const code = (reply.code as DiskErrorCode | undefined) ?? 'DISK_ATTACH_FAILED'
  const fix = FIXES[code]
  return new DiskError(code, path, `VM ${vm.name}: ${String(reply.error)}${fix ? `. ${fix}` : ''}`)
}
