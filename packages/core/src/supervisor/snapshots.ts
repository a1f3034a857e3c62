import {
  copyFileSync,
  existsSync,
  constants as fsConstants,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
} from 'node:fs'
import { join } from 'node:path'
import type { LaunchSpec } from '../launch-spec.js'
import type { logger } from '../log.js'
import { resumeAfterSave } from '../qemu/migration.js'
import type { AgentLink } from './agent-link.js'
import { BootFailure, type Deadline, withinDeadline } from './boot-deadline.js'
import type { DiskHotplug } from './disk-hotplug.js'
import type { NicLinks } from './nic-links.js'
import type { QemuProcess } from './qemu-process.js'
import { untilReady } from './readiness.js'
import { loadState, refreshGuest, saveState } from './state-transfer.js'
import type { VmDirectory } from './vm-directory.js'
import type { VmLifecycle } from './vm-lifecycle.js'

/** A snapshot's save or rollback, with the agent back, is over well within this. */
const SNAPSHOT_TIMEOUT_MS = 60_000

/** What snapshots need from the supervisor: given, never imported (see supervisor.ts). */
export interface SnapshotContext {
  dir: VmDirectory
  spec: LaunchSpec
  link: AgentLink
  log: ReturnType<typeof logger>
  /** The running QEMU. */
  qemu: () => QemuProcess | undefined
  /** Starts a QEMU that loads a saved state: same variant as the running one, same host ports. */
  startIncoming: () => QemuProcess
  /** Ends the running QEMU on purpose (a rollback replaces it). */
  stopQemu: () => Promise<void>
  lifecycle: VmLifecycle
  /** A plugged disk blocks a snapshot; a rollback forgets them (the snapshot's QEMU has none). */
  diskHotplug: DiskHotplug
  /** The NICs' links, taken down again in the rolled-back QEMU. */
  nicLinks: NicLinks
  /** A rollback failed: the VM cannot come back, and ends with `reason`. */
  lost: (reason: string) => void
}

/**
 * Snapshots of a running VM, in its directory: names, save and rollback
 * ("restore", the public name). The saving and loading themselves are state-transfer's, shared
 * with templates.
 */
export class Snapshots {
  private readonly ctx: SnapshotContext

  constructor(ctx: SnapshotContext) {
    this.ctx = ctx
  }

  /** Throws the user's error for a bad name or (`mustExist`) one never taken. */
  file(name: string, mustExist: boolean): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
      throw new Error(
        `snapshot names are letters, digits, ".", "_" and "-" (up to 64), not ${JSON.stringify(name)}`,
      )
    }
    const file = join(this.ctx.dir.path, 'snapshots', name)
    if (mustExist && !existsSync(file)) {
      let known: string[] = []
      try {
        known = readdirSync(join(this.ctx.dir.path, 'snapshots')).filter((f) => !/\.(partial|qcow2)$/.test(f))
      } catch {}
      throw new Error(
        `this VM has no snapshot named ${JSON.stringify(name)} (it has ${known.length ? known.join(', ') : 'none'})`,
      )
    }
    return file
  }

  /** `vm.snapshot(name)`: from ready, through snapshotting, back to ready. */
  async take(name: string): Promise<void> {
    const { lifecycle } = this.ctx
    this.file(name, false)
    lifecycle.assertReady()
    const blocker = this.ctx.diskHotplug.snapshotBlocker()
    if (blocker) throw new Error(blocker)
    lifecycle.to('snapshotting')
    try {
      await this.save(name)
    } finally {
      if (lifecycle.is('snapshotting')) lifecycle.to('ready')
    }
  }

  /** `vm.restore(name)`: from ready, through restoring, back to ready; or, failed, the VM's end. */
  async restore(name: string): Promise<void> {
    const { lifecycle, log } = this.ctx
    this.file(name, true)
    lifecycle.assertReady()
    lifecycle.to('restoring')
    try {
      this.ctx.diskHotplug.forgetAll()
      const qemu = await this.rollback(name)
      this.ctx.link.watchPort(await qemu.connectQmp())
      await this.ctx.nicLinks.reapply(qemu.qmp, log)
      // Its exit is awaited while restoring: one that died since must not leave a VM that says ready.
      if (!qemu.alive) throw new Error(qemu.exitReason())
    } catch (error) {
      // A VM that cannot come back is gone: every client hears it, as if QEMU had died.
      this.ctx.lost(`restoring snapshot ${name} failed: ${(error as Error).message}`)
      throw error
    }
    if (lifecycle.is('restoring')) lifecycle.to('ready')
  }

  /**
   * Saves the whole running VM (device state, all of its RAM and, in image mode, its disk overlay).
   * QEMU refuses while a 9p share is mounted; that is reported as what it means.
   */
  private async save(name: string): Promise<void> {
    const file = this.file(name, false)
    const qemu = this.running()
    mkdirSync(join(this.ctx.dir.path, 'snapshots'), { recursive: true, mode: 0o700 })
    const started = performance.now()
    let failure: Error | undefined
    // Both halves are written beside the snapshot of that name, if there is one, and replace it
    // only once both are complete: a failed save leaves the old snapshot whole.
    try {
      await saveState(qemu, this.ctx.link, `${file}.partial`, false)
      // The migration ended with the disks flushed and QEMU not writing them until `cont`: the
      // overlay now matches the RAM just saved, and a rollback must bring both back together.
      if (this.ctx.spec.image) {
        copyFileSync(this.ctx.spec.image.overlay, `${file}.qcow2.partial`, fsConstants.COPYFILE_FICLONE)
        renameSync(`${file}.qcow2.partial`, `${file}.qcow2`)
      }
      renameSync(`${file}.partial`, file)
    } catch (error) {
      rmSync(`${file}.partial`, { force: true })
      rmSync(`${file}.qcow2.partial`, { force: true })
      const message = (error as Error).message
      failure = /VirtFS|9p|mount_tag/.test(message)
        ? new Error(
            `QEMU cannot snapshot a VM while a host directory is mounted in it over 9p (the kernel-mode root, or \`mounts\`): ${message}. Snapshots work for VMs with hostRoot: false and image-mode VMs without mounts; in kernel mode a fresh VM.up() is restored from a template in about a second instead`,
          )
        : (error as Error)
    }
    try {
      await resumeAfterSave(await qemu.connectQmp())
      const deadline = this.deadline()
      await withinDeadline(this.ctx.link.resume(qemu), qemu, deadline)
      await withinDeadline(refreshGuest(qemu, this.ctx.spec, deadline, this.ctx.log), qemu, deadline)
      await withinDeadline(untilReady(this.ctx.link.mux, qemu, deadline), qemu, deadline)
    } catch (error) {
      // The save's own failure is the cause the user needs; the resume's comes after it.
      if (!failure) throw error
      throw new Error(`${failure.message}; then the VM did not resume: ${(error as Error).message}`, {
        cause: failure,
      })
    }
    if (failure) throw failure
    this.ctx.log('snapshot %s saved in %d ms', name, Math.round(performance.now() - started))
  }

  /**
   * Replaces the running QEMU by one loaded from the snapshot: same sockets, name and host ports.
   * Returns the new QEMU; a failure leaves the VM without one (restore() ends it).
   */
  private async rollback(name: string): Promise<QemuProcess> {
    const file = this.file(name, true)
    this.running()
    const started = performance.now()
    this.ctx.link.detach('the VM is being restored to a snapshot')
    await this.ctx.stopQemu()
    // Image mode: the disk as it was when the snapshot was taken (the snapshot's copy stays).
    if (this.ctx.spec.image)
      copyFileSync(`${file}.qcow2`, this.ctx.spec.image.overlay, fsConstants.COPYFILE_FICLONE)
    const deadline = this.deadline()
    const qemu = this.ctx.startIncoming()
    await loadState(qemu, this.ctx.link, file, false, this.ctx.spec, deadline, this.ctx.log)
    await withinDeadline(untilReady(this.ctx.link.mux, qemu, deadline), qemu, deadline)
    this.ctx.log('restored snapshot %s in %d ms', name, Math.round(performance.now() - started))
    return qemu
  }

  private running(): QemuProcess {
    const qemu = this.ctx.qemu()
    if (!qemu?.alive) throw new Error('the VM is not running')
    return qemu
  }

  private deadline(): Deadline {
    return {
      at: performance.now() + SNAPSHOT_TIMEOUT_MS,
      expired: () =>
        new BootFailure('BOOT_TIMEOUT', `the agent did not answer within ${SNAPSHOT_TIMEOUT_MS / 1000} s`),
      guestFailures: false,
    }
  }
}
