import type { LaunchSpec } from '../launch-spec.js'
import { parseGuestPort } from './guest-port.js'
import type { QemuCommandPlan } from './qemu-command.js'

/**
 * What one QEMU process of a VM has that its launch spec does not say: where its sockets and RAM
 * file sit, the host ports it got, and how it starts (cold, making a template, restoring one).
 */
export interface QemuInstance {
  qmpSocket: string
  agentSocket: string
  setupSocket: string
  /** The port the agent listens on when the spec's transport is vsock. */
  vsockPort: number
  /**
   * Host port per forwarded guest port; a guest port of the spec missing here gets 0 (the kernel
   * picks). A guest port here that the spec does not list is one forwarded while the VM ran
   * (vm.forwardPort): each later QEMU of the VM forwards it again, from the same host port.
   */
  hostPorts?: Record<string, number> | undefined
  memoryFile?: QemuCommandPlan['memoryFile']
  incoming?: boolean | undefined
  deferRoot?: boolean | undefined
}

/**
 * The one mapping from a VM's launch spec to QEMU's command plan. Both QEMU's start (the
 * supervisor) and the template key (a canonical spec and instance) go through it, so a spec field
 * that reaches QEMU reaches the key too: template-key.test.ts fails for a spec field that is
 * neither in the key nor named as per-instance.
 */
export function qemuPlanFor(spec: LaunchSpec, instance: QemuInstance): QemuCommandPlan {
  return {
    binary: spec.qemuBinary,
    accel: spec.accel.accel,
    kernel: spec.kernel,
    initramfs: spec.initramfs,
    runtimeDisk: spec.runtimeDisk,
    memoryMiB: spec.memoryMiB,
    cpus: spec.cpus,
    hostname: spec.name,
    hostRoot: spec.hostRoot,
    image: spec.image && { overlay: spec.image.overlay },
    mounts: spec.mounts,
    modulesDir: spec.kernel.modulesDir,
    ports: forwardedGuestPorts(spec.guestPorts, instance.hostPorts).map((key) => {
      const { port, protocol } = parseGuestPort(key)!
      return { guestPort: port, protocol, hostPort: instance.hostPorts?.[key] ?? 0 }
    }),
    qmpSocket: instance.qmpSocket,
    agentSocket: instance.agentSocket,
    setupSocket: instance.setupSocket,
    vsockPort: spec.transport.transport === 'vsock' ? instance.vsockPort : undefined,
    memoryFile: instance.memoryFile,
    incoming: instance.incoming,
    deferRoot: instance.deferRoot,
    networkSockets: spec.networkSockets,
    tscKhz: spec.tscKhz,
    kernelArgs: spec.kernelArgs,
    extraArgs: spec.qemuArgs,
  }
}

/**
 * The guest ports a VM's QEMU forwards, by key (guest-port.ts): the spec's (`ports`), then those
 * forwarded since it booted (keys of `hostPorts` the spec does not list), in the order of their keys.
 */
export function forwardedGuestPorts(
  specPorts: string[],
  hostPorts: Record<string, number> | undefined,
): string[] {
  const added = Object.keys(hostPorts ?? {})
    .filter((key) => !specPorts.includes(key))
    .sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10) || a.localeCompare(b))
  return [...specPorts, ...added]
}
