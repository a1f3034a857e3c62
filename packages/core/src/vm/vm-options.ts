import { InvalidOptionsError } from '../errors.js'

/** What to boot. Every field is optional: `VM.up()` boots the built-in default VM. */
export interface VmOptions {
  /** VM name (also the guest hostname); generated when absent. */
  name?: string
  /** Guest memory in MiB. Default 1024 (under TCG untouched memory costs nothing on the host). */
  memoryMiB?: number
  /** Virtual CPUs. Default 2. */
  cpus?: number
  /** Guest kernel: a vmlinux/bzImage path or a kernel directory. Default: see locateKernel(). */
  kernel?: string
  /** Extra kernel command line parameters. */
  kernelArgs?: string[]
  /** Extra QEMU arguments, appended verbatim. */
  qemuArgs?: string[]
  /** How long the VM may take to answer its agent health check. Default 30 s (KVM), 180 s (TCG). */
  bootTimeoutMs?: number
  /** Environment added to every command run in the VM. */
  env?: Record<string, string>
  /** Guest TCP ports to forward from 127.0.0.1; see `vm.forwardedPort()`. */
  ports?: number[]
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
  ports: 'port number[]',
  accel: '"auto" | "kvm" | "tcg"',
  transport: '"auto" | "vsock" | "virtio-serial"',
  hostRoot: 'string or false',
  persistent: 'boolean',
}

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
      throw new InvalidOptionsError(
        `unknown VM option ${JSON.stringify(key)}; known options: ${Object.keys(FIELDS).join(', ')}`,
      )
    }
    if (!matches(expected, value)) {
      throw new InvalidOptionsError(`VM option ${key} must be ${expected}, got ${describe(value)}`)
    }
  }
  return options as VmOptions
}

function matches(expected: string, value: unknown): boolean {
  switch (expected) {
    case 'string':
      return typeof value === 'string' && value.length > 0
    case 'boolean':
      return typeof value === 'boolean'
    case 'string or false':
      return value === false || (typeof value === 'string' && value.startsWith('/'))
    case 'positive integer':
      return Number.isInteger(value) && (value as number) > 0
    case 'string[]':
      return Array.isArray(value) && value.every((v) => typeof v === 'string')
    case 'port number[]':
      return Array.isArray(value) && value.every((v) => Number.isInteger(v) && v > 0 && v < 65536)
    case 'Record<string, string>':
      return (
        typeof value === 'object' &&
        value !== null &&
        !Array.isArray(value) &&
        Object.values(value).every((v) => typeof v === 'string')
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
