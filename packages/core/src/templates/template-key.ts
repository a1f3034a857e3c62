import { createHash } from 'node:crypto'
import { statSync } from 'node:fs'
import { qemuArguments } from '../qemu/qemu-command.js'
import type { LaunchSpec } from '../supervisor/launch-spec.js'

/**
 * The cache key of a VM's template: everything that defines the VM. QEMU's whole command line for
 * a canonical instance (so any device, machine or kernel-argument change is a new template), plus
 * the identity of the QEMU binary (its version), the kernel, and the initramfs and runtime disk
 * (their names are already hashes of their contents: agent build, modules, init). Not in the key:
 * the VM's name, forwarded ports and environment, which each restored VM gets for itself.
 */
export function templateKey(spec: LaunchSpec): string {
  const canonical = qemuArguments({
    binary: spec.qemuBinary,
    accel: spec.accel.accel,
    kernel: spec.kernel,
    initramfs: spec.initramfs,
    runtimeDisk: spec.runtimeDisk,
    memoryMiB: spec.memoryMiB,
    cpus: spec.cpus,
    hostname: 'template',
    hostRoot: spec.hostRoot,
    // A per-VM overlay of the same base has the same content when the template is saved (the
    // root is mounted only after a restore), so the base's identity stands for it; mounts, likewise,
    // are mounted only after a restore, so only their number, place and mode matter.
    image: spec.image ? { overlay: `image:${spec.image.identity}` } : undefined,
    mounts: spec.mounts?.map((m, i) => ({ host: `mount${i}`, guest: m.guest, writable: m.writable })),
    modulesDir: spec.kernel.modulesDir,
    ports: [],
    qmpSocket: 'qmp',
    agentSocket: 'agent',
    setupSocket: 'refresh',
    vsockPort: spec.transport.transport === 'vsock' ? 1 : undefined,
    memoryFile: { path: 'ram', shared: false },
    deferRoot: true,
    tscKhz: spec.tscKhz,
    kernelArgs: spec.kernelArgs,
    extraArgs: spec.qemuArgs,
  })
  const hash = createHash('sha256')
  hash.update('vmctl-template-v1\0')
  hash.update(`${canonical.join('\0')}\0`)
  for (const file of [spec.qemuBinary, spec.kernel.image]) {
    const stat = statSync(file)
    hash.update(`${file}:${stat.size}:${stat.mtimeMs}\0`)
  }
  return hash.digest('hex').slice(0, 20)
}

/** One line for `vmctl template ls`. */
export function templateSummary(spec: LaunchSpec): string {
  const root = spec.image
    ? `image ${spec.image.identity}`
    : spec.hostRoot
      ? `host root ${spec.hostRoot}`
      : 'minimal root'
  const extras = [
    spec.kernelArgs.length ? `kernel args: ${spec.kernelArgs.join(' ')}` : '',
    spec.qemuArgs.length ? `QEMU args: ${spec.qemuArgs.join(' ')}` : '',
  ].filter(Boolean)
  return [
    `${spec.memoryMiB} MiB, ${spec.cpus} CPU, ${spec.accel.accel}, ${root}, ${spec.kernel.release ?? spec.kernel.image}, ${spec.transport.transport}`,
    ...extras,
  ].join('; ')
}
