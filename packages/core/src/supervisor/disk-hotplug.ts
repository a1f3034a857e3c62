import { renameSync, writeFileSync } from 'node:fs'
import { DISK_CONTROLLER_ID } from '../qemu/qemu-command.js'
import type { QmpClient } from '../qemu/qmp-client.js'
import type { ControlRequest } from './control-protocol.js'

/** A disk plugged into a running VM, as its supervisor records it (disks.json in the VM directory). */
export interface AttachedDisk {
  /** Absolute host path. */
  path: string
  format: 'qcow2' | 'raw'
  readOnly: boolean
  /** The SCSI serial the guest sees (VPD page 0x80), which the agent finds the disk by. */
  serial: string
  /** QMP node name of its block backend; its scsi-hd device is `${node}-dev`. */
  node: string
  attachedAt: string
}

export type DiskRequest = Extract<ControlRequest, { op: 'attach-disk' | 'detach-disk' | 'disks' }>

/** Failure codes the VM side turns into DiskError messages (disks/disk-error.ts). */
export type DiskFailureCode =
  | 'DISK_IN_USE'
  | 'DISK_CORRUPT'
  | 'DISK_NOT_ATTACHED'
  | 'DISK_ALREADY_ATTACHED'
  | 'DISK_ATTACH_FAILED'
  | 'VM_NOT_READY'

class DiskFailure extends Error {
  constructor(
    readonly code: DiskFailureCode,
    message: string,
  ) {
    super(message)
  }
}

/** How long QEMU gets to finish a device_del (a SCSI unplug does not wait for the guest). */
const DEVICE_DELETED_TIMEOUT_MS = 10_000

/**
 * The host side of hot-plugged disks: a block backend (`blockdev-add`) and a `scsi-hd` on the
 * VM's virtio-scsi controller (`device_add`), and the reverse. QEMU's image locking (OFD locks on
 * the file) is what refuses a disk another QEMU has open read-write, across users and processes.
 * The supervisor keeps the list and writes it to `disks.json`, which `vmctl ps` checks.
 */
export class DiskHotplug {
  private readonly disks = new Map<string, AttachedDisk>()
  private nextNode = 0
  private queue: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly recordFile: string,
    private readonly log: (format: string, ...args: unknown[]) => void,
  ) {}

  list(): AttachedDisk[] {
    return [...this.disks.values()]
  }

  /** The reply to a control request; one disk operation at a time. */
  handle(request: DiskRequest, qmp: QmpClient | undefined, state: string): Promise<Record<string, unknown>> {
    const work = this.queue.then(async () => {
      try {
        if (request.op === 'disks') return { reply: request.op, ok: true, disks: this.list() }
        // A stopped VM has no QEMU to unplug from: the disk just leaves its list (the next start
        // would plug it in again).
        if (state === 'stopped' && request.op === 'detach-disk')
          return { reply: request.op, ok: true, disk: this.forget(request.path) }
        if (state !== 'ready' || !qmp) throw new DiskFailure('VM_NOT_READY', `the VM is ${state}, not ready`)
        const disk =
          request.op === 'attach-disk'
            ? await this.attach(qmp, request)
            : await this.detach(qmp, request.path)
        return { reply: request.op, ok: true, disk }
      } catch (error) {
        const code = error instanceof DiskFailure ? error.code : 'DISK_ATTACH_FAILED'
        this.log(
          '%s %s failed: %s',
          request.op,
          'path' in request ? request.path : '',
          (error as Error).message,
        )
        return { reply: request.op, ok: false, code, error: (error as Error).message }
      }
    })
    this.queue = work
    return work
  }

  /** Says why a snapshot cannot be taken now, or nothing. */
  snapshotBlocker(): string | undefined {
    if (this.disks.size === 0) return undefined
    return `a snapshot cannot hold hot-plugged disks (attached: ${this.list()
      .map((d) => d.path)
      .join(
        ', ',
      )}): their files live outside the snapshot, so restoring it would pair the guest's memory with disk contents from another time. Fix: detach them (vm.detachDisk), snapshot, and attach them again`
  }

  /**
   * Plugs the disks of the VM's last QEMU into its new one (after a stop and start, a restart, a
   * QEMU that died), with the same serials, so the guest finds them at the same by-id paths.
   * Returns each disk that could not be plugged again (its file deleted, locked by another VM),
   * with why; those leave the list.
   */
  replug(qmp: QmpClient): Promise<{ path: string; error: string }[]> {
    const work = this.queue.then(async () => {
      const disks = this.list()
      this.disks.clear()
      const failed: { path: string; error: string }[] = []
      for (const disk of disks) {
        try {
          await this.attach(qmp, { op: 'attach-disk', ...disk })
        } catch (error) {
          failed.push({ path: disk.path, error: (error as Error).message })
        }
      }
      this.save()
      return failed
    })
    this.queue = work.catch(() => {})
    return work
  }

  /** After a snapshot restored: the new QEMU has none of the hot-plugged disks, nor had the snapshot. */
  forgetAll(): void {
    if (this.disks.size) this.log('restore: %d hot-plugged disk(s) detached', this.disks.size)
    this.disks.clear()
    this.save()
  }

  private async attach(
    qmp: QmpClient,
    request: Extract<DiskRequest, { op: 'attach-disk' }>,
  ): Promise<AttachedDisk> {
    if (this.disks.has(request.path))
      throw new DiskFailure('DISK_ALREADY_ATTACHED', `${request.path} is already attached to this VM`)
    const node = `vmctl-disk${this.nextNode++}`
    const serial = request.serial ?? `vmctl-${node.slice('vmctl-disk'.length)}-${Date.now().toString(36)}`
    if ([...this.disks.values()].some((d) => d.serial === serial))
      throw new DiskFailure('DISK_ALREADY_ATTACHED', `another disk of this VM has the serial ${serial}`)
    const started = performance.now()
    try {
      await qmp.execute('blockdev-add', {
        driver: request.format,
        'node-name': node,
        'read-only': request.readOnly,
        file: { driver: 'file', filename: request.path, 'read-only': request.readOnly },
      })
    } catch (error) {
      throw backendFailure(request.path, request.format, (error as Error).message)
    }
    try {
      await qmp.execute('device_add', {
        driver: 'scsi-hd',
        id: `${node}-dev`,
        drive: node,
        bus: `${DISK_CONTROLLER_ID}.0`,
        serial,
      })
    } catch (error) {
      await qmp.execute('blockdev-del', { 'node-name': node }).catch(() => {})
      // The write lock is taken when the device claims the backend, so a disk in use fails here.
      throw backendFailure(request.path, request.format, (error as Error).message)
    }
    const disk: AttachedDisk = {
      path: request.path,
      format: request.format,
      readOnly: request.readOnly,
      serial,
      node,
      attachedAt: new Date().toISOString(),
    }
    this.disks.set(request.path, disk)
    this.save()
    this.log('disk %s plugged as %s in %d ms', request.path, serial, Math.round(performance.now() - started))
    return disk
  }

  private async detach(qmp: QmpClient, path: string): Promise<AttachedDisk> {
    const disk = this.attached(path)
    const device = `${disk.node}-dev`
    const deleted = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => done(false), DEVICE_DELETED_TIMEOUT_MS)
      const onEvent = (name: string, data: unknown) => {
        if (name === 'DEVICE_DELETED' && (data as { device?: string })?.device === device) done(true)
      }
      const done = (ok: boolean) => {
        clearTimeout(timer)
        qmp.off('event', onEvent)
        resolve(ok)
      }
      qmp.on('event', onEvent)
    })
    await qmp.execute('device_del', { id: device })
    if (!(await deleted))
      throw new DiskFailure(
        'DISK_ATTACH_FAILED',
        `QEMU did not remove the device of ${path} within ${DEVICE_DELETED_TIMEOUT_MS} ms`,
      )
    await qmp.execute('blockdev-del', { 'node-name': disk.node })
    this.disks.delete(path)
    this.save()
    return disk
  }

  private attached(path: string): AttachedDisk {
    const disk = this.disks.get(path)
    if (disk) return disk
    const attached = this.list().map((d) => d.path)
    throw new DiskFailure(
      'DISK_NOT_ATTACHED',
      `${path} is not attached to this VM (attached: ${attached.length ? attached.join(', ') : 'none'})`,
    )
  }

  private forget(path: string): AttachedDisk {
    const disk = this.attached(path)
    this.disks.delete(path)
    this.save()
    return disk
  }

  private save(): void {
    try {
      writeFileSync(`${this.recordFile}.tmp`, JSON.stringify(this.list()))
      renameSync(`${this.recordFile}.tmp`, this.recordFile)
    } catch {}
  }
}

/** QEMU's words for a file it cannot open as a disk, turned into the cause. */
function backendFailure(path: string, format: string, message: string): DiskFailure {
  if (/lock/i.test(message))
    return new DiskFailure(
      'DISK_IN_USE',
      `${path} is in use: another VM (or process) has it open for writing, and QEMU's image lock refuses a second user (${message})`,
    )
  if (/corrupt|not in qcow2 format|Unsupported qcow2|qcow2 header|Invalid|Image is not/i.test(message))
    return new DiskFailure('DISK_CORRUPT', `${path} is not a valid ${format} image: ${message}`)
  return new DiskFailure('DISK_ATTACH_FAILED', `QEMU could not open ${path} as ${format}: ${message}`)
}
