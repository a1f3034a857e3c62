import { closestName } from '../closest-name.js'
import { InvalidOptionsError } from '../errors.js'
import { isKernelName, parseKernelName } from '../kernels/kernel-name.js'
import { checkAttachments, type NetworkAttachment } from '../network/guest-network.js'
import { type GuestPortSpec, parseGuestPort } from '../qemu/guest-port.js'

/** What to boot. Every field is optional: `VM.up()` boots the built-in default VM. */
export interface VmOptions {
  /** VM name (also the guest hostname); generated when absent. */
  name?: string
  /**
   * Guest memory in MiB, at most the host's MemTotal. Default 1024 (untouched memory costs nothing
   * on the host).
   */
  memoryMiB?: number
  /** Virtual CPUs. Default 2. */
  cpus?: number
  /**
   * Guest kernel: a name (`debian:trixie`, `debian:bookworm/rt`, `debian:bookworm-backports`,
   * `debian:bookworm@6.1.0-57`; fetched once into the cache) or a vmlinux/bzImage path or a kernel
   * directory. Default: see locateKernel() (`debian:bookworm`, fetched on first use).
   */
  kernel?: string
  /** Extra kernel command line parameters; init= and rdinit= are refused (vmctl's init must run). */
  kernelArgs?: string[]
  /** Extra QEMU arguments, appended verbatim. */
  qemuArgs?: string[]
  /** How long the VM may take to answer its agent health check. Default 30 s (KVM), 180 s (TCG). */
  bootTimeoutMs?: number
  /** Environment added to every command run in the VM. */
  env?: Record<string, string>
  /**
   * Guest ports to forward from 127.0.0.1: `8080` (TCP), `"53/udp"`; see `vm.forwardedPort()`, and
   * `vm.forwardPort()` for one more while the VM runs.
   */
  ports?: GuestPortSpec[]
  /** "auto" (default): KVM when usable, else TCG. Also VMCTL_ACCEL. */
  accel?: 'auto' | 'kvm' | 'tcg'
  /**
   * How the host reaches the guest agent. "auto" (default): vsock when the host has a usable
   * /dev/vhost-vsock and the guest kernel supports it, else virtio-serial. Also VMCTL_TRANSPORT.
   */
  transport?: 'auto' | 'vsock' | 'virtio-serial'
  /**
   * Host directory shared read-only as the guest's root, under a tmpfs overlay. Default "/".
   * false: no host share; commands run in vmctl's own minimal root (busybox and the agent).
   */
  hostRoot?: string | false
  /** Keep the VM when the creating process exits (vmctl up); destroy with `vmctl down`. */
  persistent?: boolean
  /**
   * Keep one spare VM of these options ready for this process's next `VM.up()` with the same
   * options: restored, its first exec run, paused; that VM.up() takes it and answers its first
   * command in a fraction of a restore's time (docs/spare-vm.md). Costs one restore's CPU in the
   * background and a paused VM's memory. VMCTL_SPARE_VM=1 turns it on for every VM, =0 off.
   * `{ idleMs }`: a spare that outlives this process, for a `VM.up()` of the same options in any
   * process in the same directory (`vmctl run` one after another), ending itself once unused for
   * `idleMs` (at most an hour); `vmctl ps` lists it, `vmctl down` ends it.
   */
  keepSpare?: boolean | { idleMs: number }
  /**
   * Image mode: the guest's userspace comes from a disk image instead of the host. A path is an
   * existing qcow2 or raw image; an object builds a Debian image (cached). Each VM boots from its
   * own qcow2 overlay in its directory; the image is never written. See docs/images.md.
   */
  image?: string | ImageBuildOptions
  /** Image mode: commands run once on a fresh VM of the image; the disk is cached as a layer. */
  provision?: string[]
  /** Host directories shared with the guest (9p), read-only unless `writable`. */
  mounts?: MountOptions[]
  /**
   * Networks to join (VmNetwork.create()), each a NIC of its own next to the user-mode one, with
   * an address (`vm.ip(net)`) and names the other members resolve. See docs/networks.md.
   */
  networks?: NetworkAttachment[]
}

/** A Debian image built by vmctl (mmdebstrap), cached by a hash of these fields. */
export interface ImageBuildOptions {
  /** Debian suite, e.g. "bookworm". */
  distribution: string
  packages?: string[]
  /** Default http://deb.debian.org/debian. */
  mirror?: string
  /** Root filesystem size seen by the guest. Default 4. */
  diskGiB?: number
}

export interface MountOptions {
  /** Host directory. */
  host: string
  /** Absolute guest path (no spaces, commas or colons). */
  guest: string
  /** Default false: the guest cannot write to it. */
  writable?: boolean
}

const FIELDS: Record<keyof VmOptions, string> = {
  name: 'string',
  memoryMiB: 'positive integer',
  cpus: 'positive integer',
  kernel: 'string',
  kernelArgs: 'string[]',
  qemuArgs: 'string[]',
  bootTimeoutMs: 'positive integer',
  env: 'Record<string, string>',
  ports: 'port[] (8080, "53/udp")',
  accel: '"auto" | "kvm" | "tcg"',
  transport: '"auto" | "vsock" | "virtio-serial"',
  hostRoot: 'string or false',
  persistent: 'boolean',
  keepSpare: 'boolean or { idleMs }',
  image: 'image path or build options',
  provision: 'string[]',
  mounts: 'mount[]',
  networks: 'network[]',
}

/** The longest a spare that outlives its process may wait unused (keepSpare `{ idleMs }`). */
export const MAX_SPARE_IDLE_MS = 3_600_000

/** Rejects unknown fields and wrong types with a message naming the field and what it expects. */
export function validateVmOptions(options: unknown): VmOptions {
  if (options === undefined) return {}
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidOptionsError(`VM options must be an object, got ${describe(options)}`)
  }
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue
    const expected = FIELDS[key as keyof VmOptions]
    if (!expected) {
      const suggestion = closestName(key, Object.keys(FIELDS))
      throw new InvalidOptionsError(
        `unknown VM option ${JSON.stringify(key)}${suggestion ? ` (did you mean ${suggestion}?)` : ''}; known options: ${Object.keys(FIELDS).join(', ')}`,
      )
    }
    if (!matches(expected, value)) {
      throw new InvalidOptionsError(`VM option ${key} must be ${expected}, got ${describe(value)}`)
    }
  }
  checkKernelArgs((options as VmOptions).kernelArgs ?? [])
  const kernel = (options as VmOptions).kernel
  if (isKernelName(kernel)) parseKernelName(kernel) // a wrong name fails here, before anything boots
  return options as VmOptions
}

/**
 * init= and rdinit= are refused, not ignored: vmctl's own init must be PID 1, because it mounts the
 * guest's root and starts the agent every call goes through; another init would boot a VM that
 * vmctl cannot reach. A program meant to run at boot is a command (vm.exec) or a provision step.
 */
function checkKernelArgs(args: string[]): void {
  const init = args.find((arg) => /^(rd)?init=/.test(arg))
  if (init)
    throw new InvalidOptionsError(
      `kernelArgs ${JSON.stringify(init)} cannot be used: vmctl's own init must run as PID 1 to mount the guest's root and start its agent. Fix: drop it and start the program with vm.exec() after boot (or as a provision step in image mode)`,
    )
}

function matches(expected: string, value: unknown): boolean {
  switch (expected) {
    case 'string':
      return typeof value === 'string' && value.length > 0
    case 'boolean':
      return typeof value === 'boolean'
    case 'boolean or { idleMs }': {
      if (typeof value === 'boolean') return true
      const idleMs = (value as { idleMs?: unknown } | null)?.idleMs
      return (
        typeof value === 'object' &&
        Object.keys(value as object).length === 1 &&
        Number.isInteger(idleMs) &&
        (idleMs as number) > 0 &&
        (idleMs as number) <= MAX_SPARE_IDLE_MS
      )
    }
    case 'string or false':
      return value === false || (typeof value === 'string' && value.startsWith('/'))
    case 'positive integer':
      return Number.isInteger(value) && (value as number) > 0
    case 'string[]':
      return Array.isArray(value) && value.every((v) => typeof v === 'string')
    case 'port[] (8080, "53/udp")':
      return Array.isArray(value) && value.every((v) => parseGuestPort(v) !== undefined)
    case 'Record<string, string>':
      return (
        typeof value === 'object' &&
        value !== null &&
        !Array.isArray(value) &&
        Object.values(value).every((v) => typeof v === 'string')
      )
    case 'image path or build options':
      return (
        (typeof value === 'string' && value.length > 0) ||
        (typeof value === 'object' &&
          value !== null &&
          typeof (value as ImageBuildOptions).distribution === 'string' &&
          Object.keys(value).every((k) => ['distribution', 'packages', 'mirror', 'diskGiB'].includes(k)))
      )
    case 'network[]':
      checkAttachments(value) // throws with the entry that is wrong
      return true
    case 'mount[]':
      return (
        Array.isArray(value) &&
        value.every(
          (m) =>
            typeof m === 'object' &&
            m !== null &&
            typeof m.host === 'string' &&
            typeof m.guest === 'string' &&
            /^\/[^\s,:]+$/.test(m.guest) &&
            (m.writable === undefined || typeof m.writable === 'boolean') &&
            Object.keys(m).every((k) => ['host', 'guest', 'writable'].includes(k)),
        )
      )
    default:
      return expected.includes(`"${value}"`)
  }
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return `an array (${JSON.stringify(value).slice(0, 60)})`
  if (value === null) return 'null'
  return `${typeof value} ${JSON.stringify(value)?.slice(0, 60)}`
}
