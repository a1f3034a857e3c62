import { accessSync, constants, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { vsockBridgePath } from '@vmctl/agent'
import { InvalidOptionsError, VmctlError } from '../errors.js'
import { kernelConfig } from '../kernels/kernel-fit.js'
import type { ResolvedKernel } from './kernel-locator.js'

export type AgentTransport = 'virtio-serial' | 'vsock'

export interface TransportChoice {
  transport: AgentTransport
  /** Why not vsock, in words a user can act on (empty when vsock was chosen). */
  reason: string
  /** vsock-bridge on the host (for vsock). */
  bridge?: string
}

export interface TransportProbe {
  vhostDevice: string
  bridge: string | undefined
}

/**
 * vsock when the host can (/dev/vhost-vsock usable, vsock-bridge built) and the guest kernel can
 * (a virtio vsock transport), else virtio-serial, which works everywhere. vsock is a virtio device
 * with its own queues and no 9p-style migration blocker; virtio-serial is the portable default.
 * `transport` option, then VMCTL_TRANSPORT, then "auto".
 */
export function chooseTransport(
  requested: string | undefined,
  kernel: ResolvedKernel,
  env: NodeJS.ProcessEnv = process.env,
  probe: TransportProbe = { vhostDevice: '/dev/vhost-vsock', bridge: vsockBridgePath() },
): TransportChoice {
  const source = requested ? 'the transport option' : 'VMCTL_TRANSPORT'
  const wanted = requested ?? (env.VMCTL_TRANSPORT || 'auto')
  if (wanted !== 'auto' && wanted !== 'vsock' && wanted !== 'virtio-serial') {
    throw new InvalidOptionsError(
      `${source} must be "auto", "vsock" or "virtio-serial", not ${JSON.stringify(wanted)}`,
    )
  }
  if (wanted === 'virtio-serial') return { transport: 'virtio-serial', reason: `${source}=virtio-serial` }
  const problem = vsockProblem(kernel, probe)
  if (!problem) return { transport: 'vsock', reason: '', bridge: probe.bridge }
  if (wanted === 'vsock')
    throw new VmctlError('VSOCK_UNAVAILABLE', `vsock was requested (${source}) but ${problem}`)
  return { transport: 'virtio-serial', reason: problem }
}

function vsockProblem(kernel: ResolvedKernel, probe: TransportProbe): string | undefined {
  try {
    accessSync(probe.vhostDevice, constants.R_OK | constants.W_OK)
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT'
      ? `${probe.vhostDevice} does not exist. Fix: sudo modprobe vhost_vsock`
      : `${probe.vhostDevice} is not readable and writable by this user. Fix: give the user access to it (a udev rule, or the group that owns it)`
  }
  if (!probe.bridge) {
    return 'vsock-bridge was not built (no C compiler when @vmctl/agent was built). Fix: sudo apt-get install gcc libc6-dev, then pnpm build'
  }
  if (!guestHasVsock(kernel)) {
    return `the guest kernel ${kernel.image} has no virtio vsock transport (vmw_vsock_virtio_transport)`
  }
  return undefined
}

/**
 * A virtio vsock transport in the guest kernel: a module its tree lists, or built in, which a
 * kernel with no module tree (a custom build with every driver =y) can only say through its config.
 */
function guestHasVsock(kernel: ResolvedKernel): boolean {
  const listed = (file: string) => {
    if (!kernel.modulesDir) return false
    try {
      return readFileSync(join(kernel.modulesDir, file), 'utf8').includes('/vmw_vsock_virtio_transport.ko')
    } catch {
      return false
    }
  }
  return (
    listed('modules.dep') ||
    listed('modules.builtin') ||
    kernelConfig(kernel)?.get('CONFIG_VIRTIO_VSOCKETS') === 'y'
  )
}
