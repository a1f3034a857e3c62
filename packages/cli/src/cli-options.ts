import {
  findConfig,
  type GuestPortSpec,
  loadConfig,
  type PortProtocol,
  parseGuestPort,
  type VmOptions,
} from '@vmctl/core'
import { UsageError } from './usage-error.js'

export interface OptionSpec {
  type: 'string' | 'boolean'
  multiple?: boolean
  short?: string
  value?: string
  help: string
}

/**
 * Options that describe a VM, declared once: they build the parser for `run` and `up` and their
 * help text.
 */
export const VM_OPTIONS: Record<string, OptionSpec> = {
  config: {
    type: 'string',
    short: 'c',
    value: 'FILE',
    help: 'vmctl.toml describing the VM (default: ./vmctl.toml if present); flags override it',
  },
  vm: { type: 'string', value: 'NAME', help: 'which [vm.NAME] of the config file (when it has several)' },
  memory: { type: 'string', value: 'MIB', help: 'guest memory in MiB (default 1024)' },
  cpus: { type: 'string', value: 'N', help: 'virtual CPUs (default 2)' },
  kernel: {
    type: 'string',
    short: 'k',
    value: 'KERNEL',
    help: 'guest kernel: a name (debian:trixie, debian:bookworm/rt, ...; fetched once) or a path (vmlinux, bzImage, a directory)',
  },
  'kernel-arg': {
    type: 'string',
    multiple: true,
    value: 'ARG',
    help: 'extra kernel command line parameter (repeatable)',
  },
  'qemu-arg': { type: 'string', multiple: true, value: 'ARG', help: 'extra QEMU argument (repeatable)' },
  port: {
    type: 'string',
    multiple: true,
    short: 'p',
    value: 'PORT',
    help: 'forward a guest port to 127.0.0.1: 8080 (TCP), 53/udp (repeatable)',
  },
  'boot-timeout': {
    type: 'string',
    value: 'SECONDS',
    help: 'fail if the VM is not ready in time (default 30 KVM, 180 TCG)',
  },
  network: {
    type: 'string',
    multiple: true,
    value: 'NAME[:HOST,..]',
    help: 'join the VM network NAME (made if none runs), named HOST and more there (default: the VM name); repeatable',
  },
  accel: { type: 'string', value: 'auto|kvm|tcg', help: 'accelerator (default auto: KVM when usable)' },
  transport: {
    type: 'string',
    value: 'auto|vsock|virtio-serial',
    help: 'agent transport (default auto: vsock when the host has it)',
  },
}

export const EXEC_OPTIONS: Record<string, OptionSpec> = {
  'host-env': {
    type: 'boolean',
    short: 'E',
    help: "pass this shell's environment to the command (as go test -exec or a cargo runner expects)",
  },
  env: {
    type: 'string',
    multiple: true,
    short: 'e',
    value: 'K=V',
    help: 'environment variable for the command (repeatable)',
  },
  cwd: {
    type: 'string',
    value: 'DIR',
    help: 'working directory in the guest (default: the current directory)',
  },
  user: {
    type: 'string',
    short: 'u',
    value: 'USER',
    help: 'run as this guest user (name, uid or name:group)',
  },
  timeout: { type: 'string', value: 'SECONDS', help: 'kill the command after this long' },
  tty: {
    type: 'boolean',
    short: 't',
    help: "run it on a terminal in the guest, of this terminal's size (an interactive shell, vim, top)",
  },
}

export const HELP_OPTION: Record<string, OptionSpec> = {
  help: { type: 'boolean', short: 'h', help: 'show this help' },
}

export function helpLines(options: Record<string, OptionSpec>): string {
  return Object.entries(options)
    .map(([name, spec]) => {
      const flag = `${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.value ? ` ${spec.value}` : ''}`
      return `  ${flag.padEnd(30)} ${spec.help}`
    })
    .join('\n')
}

type Values = Record<string, string | boolean | string[] | undefined>

/**
 * The VM the flags describe: the config file's (-c, or ./vmctl.toml when there is one), with
 * every flag given overriding its field.
 */
export function vmOptionsFrom(values: Values): VmOptions {
  const file = (values.config as string | undefined) ?? findConfig()
  const fromFile = file
    ? loadConfig(file, { name: (values.vm ?? values.name) as string | undefined }).options
    : undefined
  const flags = flagOptions(values)
  if (!fromFile) return flags
  return { ...fromFile, ...flags }
}

function flagOptions(values: Values): VmOptions {
  const options: VmOptions = {}
  if (values.memory !== undefined) options.memoryMiB = positiveInt('--memory', values.memory as string)
  if (values.cpus !== undefined) options.cpus = positiveInt('--cpus', values.cpus as string)
  if (values.kernel !== undefined) options.kernel = values.kernel as string
  if (values['kernel-arg']) options.kernelArgs = values['kernel-arg'] as string[]
  if (values['qemu-arg']) options.qemuArgs = values['qemu-arg'] as string[]
  if (values.port) options.ports = (values.port as string[]).map((p) => guestPort(p, '--port takes').spec)
  if (values.network) options.networks = (values.network as string[]).map(network)
  if (values['boot-timeout'] !== undefined)
    options.bootTimeoutMs = seconds('--boot-timeout', values['boot-timeout'] as string)
  if (values.accel !== undefined) {
    const accel = values.accel as string
    if (!['auto', 'kvm', 'tcg'].includes(accel))
      throw new UsageError(`--accel must be auto, kvm or tcg, not ${JSON.stringify(accel)}`)
    options.accel = accel as VmOptions['accel']
  }
  if (values.transport !== undefined) {
    const transport = values.transport as string
    if (!['auto', 'vsock', 'virtio-serial'].includes(transport))
      throw new UsageError(
        `--transport must be auto, vsock or virtio-serial, not ${JSON.stringify(transport)}`,
      )
    options.transport = transport as VmOptions['transport']
  }
  return options
}

export function envFrom(values: Values): Record<string, string> {
  const env: Record<string, string> = values['host-env'] ? hostEnvironment() : {}
  for (const pair of (values.env as string[] | undefined) ?? []) {
    const eq = pair.indexOf('=')
    if (eq <= 0) throw new UsageError(`--env takes KEY=VALUE, got ${JSON.stringify(pair)}`)
    env[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return env
}

export function positiveInt(flag: string, text: string): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n <= 0)
    throw new UsageError(`${flag} takes a positive integer, got ${JSON.stringify(text)}`)
  return n
}

export function seconds(flag: string, text: string): number {
  const n = Number(text)
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(`${flag} takes a number of seconds, got ${JSON.stringify(text)}`)
  return Math.round(n * 1000)
}

/** `--network NAME[:HOST[,ALIAS...]]`; names are checked where VM.up checks them. */
function network(text: string): NonNullable<VmOptions['networks']>[number] {
  const colon = text.indexOf(':')
  if (colon < 0) return text
  const [hostname, ...aliases] = text.slice(colon + 1).split(',')
  if (!hostname || aliases.some((a) => !a))
    throw new UsageError(`--network takes NAME[:HOST[,ALIAS...]], got ${JSON.stringify(text)}`)
  return { network: text.slice(0, colon), hostname, ...(aliases.length ? { aliases } : {}) }
}

/** `--port PORT`: a TCP port number, or a usage error. */
export function port(text: string, what = '--port takes'): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n <= 0 || n > 65535)
    throw new UsageError(`${what} a TCP port number (1-65535), got ${JSON.stringify(text)}`)
  return n
}

/** A guest port as `-p` and `vmctl forward` take it: 8080 (TCP), 8080/tcp, 53/udp. */
export function guestPort(
  text: string,
  what: string,
): { spec: GuestPortSpec; port: number; protocol: PortProtocol } {
  const parsed = parseGuestPort(text)
  if (!parsed)
    throw new UsageError(
      `${what} a port number (1-65535), with /udp for UDP (53/udp), got ${JSON.stringify(text)}`,
    )
  const spec: GuestPortSpec = parsed.protocol === 'udp' ? `${parsed.port}/udp` : parsed.port
  return { spec, ...parsed }
}

/** This shell's environment, minus what belongs to this host's session and would mislead the guest. */
export function hostEnvironment(): Record<string, string> {
  const skip = new Set([
    'PWD',
    'OLDPWD',
    'SHLVL',
    '_',
    'XDG_RUNTIME_DIR',
    'SSH_AUTH_SOCK',
    'DBUS_SESSION_BUS_ADDRESS',
  ])
  return Object.fromEntries(
    Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && !skip.has(e[0])),
  )
}
