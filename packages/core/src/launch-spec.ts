import type { AcceleratorChoice } from './host/accelerator.js'
import type { ResolvedKernel } from './host/kernel-locator.js'
import type { TransportChoice } from './host/transport-choice.js'

/** Everything the supervisor needs to boot one VM; written by the creator as launch.json. */
export interface LaunchSpec {
  name: string
  createdAt: string
  creatorPid: number
  persistent: boolean
  /**
   * A spare (vm/spare-vm.ts): booted ahead for its creator's next VM.up(), warmed and paused until
   * an `adopt` request gives it that VM's name (supervisor/spare-park.ts). Absent: an ordinary VM.
   */
  spare?: boolean
  /**
   * A spare that outlives the process that started it (VmOptions.keepSpare `{ idleMs }`: `vmctl
   * run`): nobody holds its lease until a VM.up() of any process adopts it, and it ends itself
   * once unadopted this long.
   */
  spareIdleMs?: number
  qemuBinary: string
  kernel: ResolvedKernel
  initramfs: string
  runtimeDisk: string
  memoryMiB: number
  cpus: number
  hostRoot: string | undefined
  /**
   * Image mode: the VM's qcow2 overlay (in its directory) and the identity of what it is backed by
   * (the template key uses the identity, not the per-VM path).
   */
  image?: { overlay: string; identity: string } | undefined
  /** Host directories shared over 9p. */
  mounts?: { host: string; guest: string; writable: boolean }[] | undefined
  /** Guest ports forwarded from the host, by key (qemu/guest-port.ts: "8080" is TCP, "53/udp"). */
  guestPorts: string[]
  /** The sockets of the VM's ports on its networks' switches, one NIC each (network/switch.ts). */
  networkSockets?: string[] | undefined
  /**
   * The VM's address on each network, in NIC order (`networkSockets`'): a start or restart boots a
   * guest that has none, and the supervisor gives them again (supervisor/network-rejoin.ts).
   */
  networkAddresses?: Array<{ network: string; ip: string; mac: string }> | undefined
  kernelArgs: string[]
  qemuArgs: string[]
  accel: AcceleratorChoice
  transport: TransportChoice
  tscKhz: number | undefined
  /** Undefined: the default for the accelerator finally used. */
  bootTimeoutMs: number | undefined
  cacheDir: string
  /** Boot from (and make) templates: see supervisor.ts bootFromTemplate. Off with VMCTL_TEMPLATES=0. */
  templates: boolean
  /** The templates' disk budget in MiB (VMCTL_TEMPLATE_CACHE_MB; 0: no cap); optional in older specs. */
  templateCacheMiB?: number
}

/** Boot budgets: generous under TCG, where 8 parallel boots on 2 cores take ~6x one boot. */
export const DEFAULT_BOOT_TIMEOUT_KVM_MS = 30_000
export const DEFAULT_BOOT_TIMEOUT_TCG_MS = 180_000
