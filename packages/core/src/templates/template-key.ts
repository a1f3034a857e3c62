import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { release as osRelease } from 'node:os'
import { contentHash } from '../host/content-hash.js'
import type { LaunchSpec } from '../launch-spec.js'
import { qemuArguments } from '../qemu/qemu-command.js'
import { type QemuInstance, qemuPlanFor } from '../qemu/qemu-plan.js'

/**
 * The cache key of a VM's template: everything that defines the VM, and nothing of where the
 * cache or the tools sit on this host, so a cache restored on another CI runner (another $HOME)
 * keeps its templates. QEMU's whole command line for a canonical instance, with the files in it
 * replaced by placeholders (so any device, machine or kernel-argument change is a new template),
 * plus the content hashes of those files: the QEMU binary (its version), the kernel, the initramfs
 * and the runtime disk (the very bytes the saved RAM was booted from: a disk rebuilt under the same
 * name gets another filesystem UUID). Under KVM the guest runs on the host's CPU model (`-cpu
 * host`), which a saved device state is bound to, and KVM's CPUID depends on the host kernel: both
 * are in the key; under TCG the CPU is QEMU's own (`-cpu max`), covered by the QEMU binary. Not in
 * the key: the VM's name, forwarded ports and environment, which each restored VM gets for itself.
 */
export function templateKey(spec: LaunchSpec): string {
  const canonical = qemuArguments(qemuPlanFor(canonicalSpec(spec), CANONICAL_INSTANCE))
  const hash = createHash('sha256')
  // v3: templates are saved with the agent warmed up (agent-warm-up.ts); older ones are remade.
  // v4: the warm-up runs a command that starts (exit-zero-program.ts).
  // v5: saved quiet (guest-quiet.ts), the warm-up's program kept for the first command's rehearsal
  // (first-command-rehearsal.ts).
  // v6: the warm-up runs a command with an input too (the agent's stdin path).
  hash.update('vmctl-template-v6\0')
  hash.update(`${canonical.join('\0')}\0`)
  const files = {
    qemu: spec.qemuBinary,
    kernel: spec.kernel.image,
    initramfs: spec.initramfs,
    'runtime-disk': spec.runtimeDisk,
  }
  for (const [name, file] of Object.entries(files))
    hash.update(`${name} ${contentHash(file, spec.cacheDir)}\0`)
  if (spec.accel.accel === 'kvm') hash.update(`host cpu ${hostCpuModel()}\0host kernel ${osRelease()}\0`)
  return hash.digest('hex').slice(0, 20)
}

/** Sockets and RAM file as placeholders; RAM mapped the way a restored VM maps it. */
const CANONICAL_INSTANCE: QemuInstance = {
  qmpSocket: 'qmp',
  agentSocket: 'agent',
  setupSocket: 'refresh',
  vsockPort: 1,
  memoryFile: { path: 'ram', shared: false },
  deferRoot: true,
}

/**
 * The spec as the key sees it: every field passes through (a new one reaches the key), except the
 * per-instance ones, fixed to canonical values, and the files, replaced by their roles (their
 * content hashes are in the key on their own).
 */
function canonicalSpec(spec: LaunchSpec): LaunchSpec {
  return {
    ...spec,
    name: 'template',
    guestPorts: [],
    // Each member has its own port on the switch; only how many networks the VM is on matters.
    networkSockets: spec.networkSockets?.map((_, i) => `network${i}`),
    // Given to the guest after its boot (a template's guest has none of them).
    networkAddresses: undefined,
    qemuBinary: 'qemu',
    // Where the modules sit on this host is told to a restored guest in its refresh (see
    // guest-setup-port.ts): only whether there are any is part of the definition.
    kernel: { ...spec.kernel, image: 'kernel', modulesDir: spec.kernel.modulesDir && 'modules' },
    initramfs: 'initramfs',
    runtimeDisk: 'runtime-disk',
    // A per-VM overlay of the same base has the same content when the template is saved (the
    // root is mounted only after a restore), so the base's identity stands for it; mounts, likewise,
    // are mounted only after a restore, so only their number, place and mode matter.
    image: spec.image && { overlay: `image:${spec.image.identity}`, identity: spec.image.identity },
    mounts: spec.mounts?.map((m, i) => ({ host: `mount${i}`, guest: m.guest, writable: m.writable })),
    // Measured from /proc/cpuinfo's "cpu MHz" where the model name has no nominal rate (AMD
    // EPYC, say): two runners of one CPU model differ in the last kHz. To the MHz, a clone's guest
    // clock runs at most 0.05% off until its next refresh steps it.
    tscKhz: spec.tscKhz && Math.round(spec.tscKhz / 1000) * 1000,
  }
}

/** The host CPU as KVM shows it to a `-cpu host` guest: vendor, family, model, stepping and flags. */
export function hostCpuModel(cpuinfo = readCpuinfo()): string {
  const first = cpuinfo.split('\n\n')[0] ?? ''
  const field = (name: string) => first.match(new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm'))?.[1]?.trim() ?? ''
  return ['vendor_id', 'cpu family', 'model', 'model name', 'stepping', 'flags'].map(field).join('|')
}

function readCpuinfo(): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8')
  } catch {
    return ''
  }
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
