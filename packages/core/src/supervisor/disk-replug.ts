import { credentials, Metadata } from '@grpc/grpc-js'
import { DevicesClient } from '@vmctl/agent'
import type { DiskHotplug } from './disk-hotplug.js'
import type { QemuProcess } from './qemu-process.js'

/** How long the guest gets to see each disk plugged in again (as attachDisk's default). */
const GUEST_SEES_IT_MS = 30_000

/**
 * After a start or restart: the VM's disks go into its new QEMU again (a new QEMU has none of the
 * hot-plugged ones), and this resolves once the guest has each of them, so that `start()` resolves
 * with the disks where they were. The agent's watch for a serial starts before the plug, as in
 * attachDisk (disks/disk-attach.ts), so nothing between the two is missed. Returns a warning per
 * disk that is not back (its file deleted meanwhile, locked by another VM, not seen by the guest).
 */
export async function replugDisks(
  hotplug: DiskHotplug,
  qemu: QemuProcess,
  agentSocket: string,
): Promise<string[]> {
  const disks = hotplug.list()
  if (disks.length === 0) return []
  const qmp = await qemu.connectQmp()
  const devices = new DevicesClient(`unix://${agentSocket}`, credentials.createInsecure())
  try {
    const seen = disks.map((disk) => {
      const call = { cancel: () => {} }
      const promise = new Promise<void>((resolve, reject) => {
        const pending = devices.waitDisk(
          { serial: disk.serial, timeoutMs: GUEST_SEES_IT_MS },
          new Metadata(),
          { deadline: new Date(Date.now() + GUEST_SEES_IT_MS + 10_000) },
          (error) => (error ? reject(error) : resolve()),
        )
        call.cancel = () => pending.cancel()
      })
      promise.catch(() => {})
      return { disk, promise, call }
    })
    const failed = await hotplug.replug(qmp)
    const warnings = failed.map(
      ({ path, error }) => `disk ${path} was not plugged in again after the start: ${error}`,
    )
    for (const { disk, promise, call } of seen) {
      if (failed.some((f) => f.path === disk.path)) {
        call.cancel()
        continue
      }
      await promise.catch((error: Error) =>
        warnings.push(
          `disk ${disk.path} (serial ${disk.serial}) is plugged in again, but the guest did not report it: ${error.message}`,
        ),
      )
    }
    return warnings
  } finally {
    devices.close()
  }
}
