import { AGENT_PORT_NAME, SETUP_PORT_NAME } from '@vmctl/agent'
import type { Accelerator } from '../host/accelerator.js'
import type { ResolvedKernel } from '../host/kernel-locator.js'
import { RUNTIME_DISK_SERIAL } from '../initramfs/runtime-disk.js'
import type { PortProtocol } from './guest-port.js'
import { templateMac } from './template-mac.js'

export interface PortForward {
  guestPort: number
  protocol: PortProtocol
  /** 0: let the kernel pick a free host port (read back over QMP), so parallel VMs never collide. */
  hostPort: number
}

export interface QemuCommandPlan {
  binary: string
  accel: Accelerator
  kernel: ResolvedKernel
  initramfs: string
  /** Read-only disk with node and the agent (see runtime-disk.ts). */
  runtimeDisk: string
  memoryMiB: number
  cpus: number
  hostname: string
  /** Host directory shared read-only as the guest's root (with a tmpfs overlay), or undefined. */
  hostRoot: string | undefined
  /** Host path of the guest kernel's modules, mounted in the guest at /lib/modules/RELEASE. */
  modulesDir: string | undefined
  ports: PortForward[]
  qmpSocket: string
  agentSocket: string
  /**
   * QEMU's end of the `vmctl.setup` port, served in the guest by guest-setup (clock, RNG,
   * hostname and the deferred root of a restored VM, before the agent is awake).
   */
  setupSocket?: string | undefined
  /**
   * The agent on vsock at this port. QEMU's vhost-vsock device gets its fd and CID from
   * `vsock-bridge with-cid`, which reserves the CID and fills in these placeholders.
   */
  vsockPort?: number | undefined
  /**
   * Guest RAM in a file (templates): `shared` writes through to it (the VM a template is made
   * from); otherwise it is mapped privately, copy-on-write (every VM restored from it).
   */
  memoryFile?: { path: string; shared: boolean } | undefined
  /** Start paused, waiting for a saved state (`migrate-incoming` over QMP). */
  incoming?: boolean | undefined
  /** The init mounts the root only when the agent is told to go (see init-script.ts). */
  deferRoot?: boolean | undefined
  /** Image mode: the VM's own qcow2 overlay; the init mounts its root filesystem as the guest root. */
  image?: { overlay: string } | undefined
  /** Host directories shared over 9p, mounted by the init under the root once it is ready. */
  mounts?: { host: string; guest: string; writable: boolean }[] | undefined
  /**
   * One virtio-net NIC per network the VM is on, after the user-mode one, each connected to the
   * Unix socket of its port on the network's switch (see network/switch.ts).
   */
  networkSockets?: string[] | undefined
  tscKhz: number | undefined
  kernelArgs: string[]
  extraArgs: string[]
}

export const GUEST_ADDRESS = '10.0.2.15'
export const GUEST_GATEWAY = '10.0.2.2'
export const GUEST_DNS = '10.0.2.3'
/** QEMU reports the guest opening and closing this port as VSERPORT_CHANGE events with this id. */
export const AGENT_PORT_DEVICE_ID = 'agentport'
export const ROOT_MOUNT_TAG = 'hostroot'
export const GUEST_CHROOT = '/newroot'
/** The virtio-blk serial of an image-mode VM's root disk (its overlay). */
export const IMAGE_DISK_SERIAL = 'vmctl-image'
/** The virtio-scsi controller that hot-plugged disks attach to (bus `${DISK_CONTROLLER_ID}.0`). */
export const DISK_CONTROLLER_ID = 'vmctl-scsi'
/** The netdev of network NIC `i` (the i-th of `networks`): QMP `set_link` names it (nic-links.ts). */
export const networkNetdevId = (i: number): string => `vnet${i}`
export const VSOCK_FD_PLACEHOLDER = '@VSOCK_FD@'
export const VSOCK_CID_PLACEHOLDER = '@VSOCK_CID@'

/**
 * The kernel command line. Each parameter earned its place by measurement under TCG on the
 * reference machine (docs/boot-recipe.md, docs/prototype-measurements.md section 2):
 * - `console=ttyS0 quiet`: a serial console sees panics from the first instruction; quiet keeps
 *   the slow per-byte serial path short.
 * - `panic=-1` with QEMU's -no-reboot: a panic ends QEMU at once instead of hanging.
 * - `cryptomgr.notests`: skips crypto self-tests (0.43 s of guest time under TCG).
 * - `8250.nr_uarts=1`: probe one UART, not four.
 * - `tsc=reliable`, and under TCG `tsc_early_khz`: microvm runs without a PIT, TCG has no
 *   kvm-clock, so the kernel cannot calibrate the TSC and hangs; we tell it the host's rate.
 * - `random.trust_cpu=on`: node needs getrandom() at start; no entropy wait.
 * - `init_on_alloc=0`: Debian turns zeroing of every allocation on; under TCG that is slow.
 * - `pci=off`: microvm has no PCI; skips the probe.
 */
export function kernelCommandLine(plan: QemuCommandPlan): string {
  const args = [
    'console=ttyS0',
    'quiet',
    'panic=-1',
    'cryptomgr.notests',
    '8250.nr_uarts=1',
    'tsc=reliable',
    'random.trust_cpu=on',
    'init_on_alloc=0',
    'pci=off',
    'rdinit=/init',
  ]
  if (plan.accel === 'tcg' && plan.tscKhz) args.push(`tsc_early_khz=${plan.tscKhz}`)
  args.push(`vmctl_runtime_serial=${RUNTIME_DISK_SERIAL}`)
  if (plan.vsockPort !== undefined) args.push(`vmctl_agent=vsock:${plan.vsockPort}`)
  if (plan.deferRoot) args.push('vmctl_defer_root=1')
  args.push(`vmctl_hostname=${plan.hostname}`, `vmctl_net=${GUEST_ADDRESS}/24,${GUEST_GATEWAY},${GUEST_DNS}`)
  if (plan.image) {
    args.push(`vmctl_root=disk:${IMAGE_DISK_SERIAL}`, `vmctl_chroot=${GUEST_CHROOT}`)
  } else if (plan.hostRoot) {
    args.push(`vmctl_root=9p:${ROOT_MOUNT_TAG}`, `vmctl_chroot=${GUEST_CHROOT}`)
    // The kernel command line splits on spaces; a module path with one cannot be passed.
    if (plan.modulesDir && !/\s/.test(plan.modulesDir)) args.push(`vmctl_modules=${plan.modulesDir}`)
  }
  if (plan.mounts?.length)
    args.push(
      `vmctl_mounts=${plan.mounts.map((m, i) => `${mountTag(i)}:${m.guest}:${m.writable ? 'rw' : 'ro'}`).join(',')}`,
    )
  args.push(...plan.kernelArgs)
  return args.join(' ')
}

export function mountTag(index: number): string {
  return `vmctl_mount${index}`
}

/** QEMU option values separate fields with commas; a comma inside a value is doubled. */
function optionValue(value: string): string {
  return value.replace(/,/g, ',,')
}

/**
 * QEMU's arguments. microvm (virtio-mmio, no PCI, no legacy devices) with its default qboot
 * firmware and the PVH entry of an uncompressed vmlinux was the fastest recipe measured here:
 * 2.6 s median to init under TCG against 3.2-3.6 s for q35/pc (docs/prototype-measurements.md section 2).
 * `rtc=on` avoids two 1 s RTC probe timeouts.
 */
/**
 * The CPU TCG emulates: everything it can (`max`) but ERMS. With ERMS the guest's kernel copies
 * (a read out of the page cache, a write to a port, a page cleared) and glibc's large memcpy use
 * `rep movsb`, which TCG runs a byte per step; without it the kernel uses `rep movsq`, eight bytes
 * a step. Measured in one run (docs/file-transfers.md): `dd` of a 256 MiB tmpfs file 555-1392 ms
 * of QEMU CPU against 1398-2126; a 64 MiB pull 0.66x the QEMU CPU, its raw floor 0.78x.
 */
const TCG_CPU = 'max,-erms'

export function qemuArguments(plan: QemuCommandPlan): string[] {
  const machine = `microvm,pit=off,pic=off,isa-serial=on,rtc=on${plan.memoryFile ? ',memory-backend=ram' : ''}`
  const args = [
    '-machine',
    machine,
    '-accel',
    plan.accel === 'kvm' ? 'kvm' : 'tcg,thread=multi',
    '-cpu',
    plan.accel === 'kvm' ? 'host' : TCG_CPU,
    '-m',
    `${plan.memoryMiB}M`,
    '-smp',
    String(plan.cpus),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-kernel',
    plan.kernel.image,
    '-initrd',
    plan.initramfs,
    '-append',
    kernelCommandLine(plan),
    // The serial console goes to QEMU's stdout, which the supervisor reads and keeps.
    '-chardev',
    'stdio,id=console,signal=off',
    '-serial',
    'chardev:console',
    '-qmp',
    `unix:${optionValue(plan.qmpSocket)},server=on,wait=off`,
    // The agent's channel: QEMU listens, so the host can reconnect at will (snapshots, restarts).
    '-device',
    'virtio-serial-device,max_ports=4',
    '-chardev',
    `socket,id=agent,path=${optionValue(plan.agentSocket)},server=on,wait=off`,
    '-device',
    `virtserialport,chardev=agent,name=${AGENT_PORT_NAME},id=${AGENT_PORT_DEVICE_ID}`,
    ...(plan.setupSocket
      ? [
          '-chardev',
          `socket,id=setup,path=${optionValue(plan.setupSocket)},server=on,wait=off`,
          '-device',
          `virtserialport,chardev=setup,name=${SETUP_PORT_NAME}`,
        ]
      : []),
    '-device',
    'virtio-rng-device',
    // Hot-plugged disks (vm.attachDisk) go on this controller as scsi-hd: virtio-mmio has no
    // hot-plug, a SCSI bus does. Present from boot in every VM, so templates stay one per
    // definition; its driver loads on the first attach (docs/disks.md).
    '-device',
    `virtio-scsi-device,id=${DISK_CONTROLLER_ID}`,
    '-drive',
    `if=none,id=runtime,file=${optionValue(plan.runtimeDisk)},format=raw,readonly=on`,
    '-device',
    `virtio-blk-device,drive=runtime,serial=${RUNTIME_DISK_SERIAL}`,
    '-netdev',
    `user,id=net0,${plan.ports.map((p) => `hostfwd=${p.protocol}:127.0.0.1:${p.hostPort}-:${p.guestPort}`).join(',')}`.replace(
      /,$/,
      '',
    ),
    '-device',
    'virtio-net-device,netdev=net0',
  ]
  for (const [i, socket] of (plan.networkSockets ?? []).entries()) {
    // QEMU connects as the client (the switch listens); the MAC is the same for every VM (the
    // member's own is set in the guest), so every member restores from one template.
    args.push(
      '-netdev',
      `stream,id=${networkNetdevId(i)},server=off,addr.type=unix,addr.path=${optionValue(socket)}`,
      '-device',
      `virtio-net-device,netdev=${networkNetdevId(i)},mac=${templateMac(i)}`,
    )
  }
  if (plan.memoryFile) {
    args.push(
      '-object',
      `memory-backend-file,id=ram,size=${plan.memoryMiB}M,mem-path=${optionValue(plan.memoryFile.path)},share=${plan.memoryFile.shared ? 'on' : 'off'}`,
    )
  }
  if (plan.incoming) args.push('-incoming', 'defer')
  if (plan.vsockPort !== undefined) {
    args.push(
      '-device',
      `vhost-vsock-device,guest-cid=${VSOCK_CID_PLACEHOLDER},vhostfd=${VSOCK_FD_PLACEHOLDER}`,
    )
  }
  if (plan.image) {
    // No cache=unsafe: a provisioning layer is this very file, and the guest's flushes must reach it.
    args.push(
      '-drive',
      `if=none,id=image,file=${optionValue(plan.image.overlay)},format=qcow2,discard=unmap`,
      '-device',
      `virtio-blk-device,drive=image,serial=${IMAGE_DISK_SERIAL}`,
    )
  }
  for (const [i, mount] of (plan.mounts ?? []).entries()) {
    // security_model=none: the guest's writes land as the user running QEMU, like vmtest's shares.
    args.push(
      '-fsdev',
      `local,id=${mountTag(i)},path=${optionValue(mount.host)},security_model=none${mount.writable ? '' : ',readonly=on'}`,
      '-device',
      `virtio-9p-device,fsdev=${mountTag(i)},mount_tag=${mountTag(i)}`,
    )
  }
  if (plan.hostRoot && !plan.image) {
    args.push(
      '-fsdev',
      `local,id=hostroot,path=${optionValue(plan.hostRoot)},security_model=none,readonly=on,multidevs=remap`,
      '-device',
      `virtio-9p-device,fsdev=hostroot,mount_tag=${ROOT_MOUNT_TAG}`,
    )
  }
  args.push(...plan.extraArgs)
  return args
}
