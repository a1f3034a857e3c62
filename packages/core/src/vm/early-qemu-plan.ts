import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { LaunchSpec } from '../launch-spec.js'
import { type EarlyQemuPlan, fileIdentity } from '../supervisor/early-qemu.js'
import { qemuLaunchCommand } from '../supervisor/qemu-process.js'
import { qemuSocketsIn } from '../supervisor/vm-directory.js'
import { templateKey } from '../templates/template-key.js'
import { ramDenserThanSaved, templateFiles, templatesDir } from '../templates/template-store.js'

/**
 * The QEMU command of this VM's template clone, for its supervisor to start before it loads
 * (early-qemu.ts), when the clone is what the supervisor will most likely do: templates on, the
 * definition's template there, no KVM probe first (its QEMU boots cold), the agent over
 * virtio-serial (vsock's bridge reserves the guest's CID in the supervisor). A plan is a guess the
 * supervisor checks: it adopts that QEMU only for the very command it would run itself, after its
 * own check of the template, so a wrong guess costs a QEMU killed, never a wrong VM.
 */
export function earlyQemuPlan(spec: LaunchSpec, socketDir: string): EarlyQemuPlan | undefined {
  if (!spec.templates || spec.accel.probe || spec.transport.transport !== 'virtio-serial') return undefined
  try {
    const files = templateFiles(join(templatesDir(spec.cacheDir), templateKey(spec)))
    if (!existsSync(files.meta) || ramDenserThanSaved(files)) return undefined
    const identity = fileIdentity(files.ram)
    if (!identity) return undefined
    const command = qemuLaunchCommand({
      spec,
      accel: spec.accel.accel,
      sockets: qemuSocketsIn(socketDir),
      variant: { memoryFile: { path: files.ram, shared: false }, deferRoot: true, incoming: true },
      hostPorts: {},
      commandPrefix: [],
    })
    return { command, ram: { path: files.ram, identity } }
  } catch {
    return undefined // the supervisor finds out for itself, and says what is wrong
  }
}
