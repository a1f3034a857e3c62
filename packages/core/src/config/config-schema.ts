/**
 * The schema of vmctl.toml, declared once: it validates files (config-file.ts) and generates the
 * reference page (docs/config.md, see config-docs.ts). Field names are the same as `VmOptions` in
 * code, so one vocabulary serves the file, the API and the override of one by the other.
 */
export interface FieldSchema {
  /** What the value must be, as said in error messages and the docs. */
  expected: string
  check: (value: unknown) => boolean
  doc: string
  default?: string
  example: string
  /** A host path: relative paths are resolved against the config file's directory. */
  path?: boolean
  /** A path that may also be a kernel name (`debian:trixie`), kept as written. */
  kernelName?: boolean
  /** Fields of a table (or of each table of an array of tables) when the value is one. */
  fields?: Record<string, FieldSchema>
  /** The value may be a string (checked by `check`) or a table of `fields`. */
  stringOrTable?: boolean
  arrayOfTables?: boolean
  /** The path names a disk image: checked with qemu-img when the file is loaded. */
  diskImage?: boolean
  /** With arrayOfTables: an entry may also be a string, checked by this (e.g. a network name). */
  stringEntry?: { expected: string; check: (value: string) => boolean }
}

import { parseGuestPort } from '../qemu/guest-port.js'

const isString = (v: unknown): v is string => typeof v === 'string' && v.length > 0
const isStrings = (v: unknown): boolean => Array.isArray(v) && v.every((s) => typeof s === 'string')
const isPositiveInt = (v: unknown): boolean =>
  (typeof v === 'number' || typeof v === 'bigint') && Number.isInteger(Number(v)) && Number(v) > 0
const isBoolean = (v: unknown): boolean => typeof v === 'boolean'
const oneOf =
  (...values: string[]) =>
  (v: unknown): boolean =>
    typeof v === 'string' && values.includes(v)

/** Guest paths go on the kernel command line: absolute, no spaces, commas or colons. */
export const GUEST_PATH = /^\/[^\s,:]*$/

export const IMAGE_FIELDS: Record<string, FieldSchema> = {
  distribution: {
    expected: 'a Debian suite name (e.g. "bookworm")',
    check: (v) => isString(v) && /^[a-z][a-z0-9-]*$/.test(v),
    doc: 'Debian release the image is built from, with mmdebstrap from the Debian archive.',
    example: '"bookworm"',
  },
  packages: {
    expected: 'an array of Debian package names',
    check: (v) =>
      Array.isArray(v) && v.every((p) => isString(p) && /^[a-z0-9][a-z0-9+.-]*(=[^\s]+)?$/.test(p)),
    doc: 'Packages installed into the image (with their dependencies, without recommends).',
    default: '[]',
    example: '["jq", "postgresql"]',
  },
  mirror: {
    expected: 'an http(s) URL of a Debian archive',
    check: (v) => isString(v) && /^https?:\/\//.test(v),
    doc: 'Debian archive to build from.',
    default: '"http://deb.debian.org/debian"',
    example: '"http://deb.debian.org/debian"',
  },
  diskGiB: {
    expected: 'a positive integer (GiB)',
    check: isPositiveInt,
    doc: "Size of the image's root filesystem as the guest sees it; the qcow2 file only holds what is written.",
    default: '4',
    example: '8',
  },
}

export const MOUNT_FIELDS: Record<string, FieldSchema> = {
  host: {
    expected: 'a host directory path',
    check: isString,
    doc: 'Host directory to share (relative to the config file).',
    example: '"."',
    path: true,
  },
  guest: {
    expected: 'an absolute guest path without spaces, commas or colons',
    check: (v) => isString(v) && GUEST_PATH.test(v) && v !== '/',
    doc: 'Where the directory appears in the guest.',
    example: '"/mnt/project"',
  },
  writable: {
    expected: 'a boolean',
    check: isBoolean,
    doc: 'Let the guest write to the host directory. Read-only mounts refuse writes (EROFS).',
    default: 'false',
    example: 'true',
  },
}

/** Network names (network-directory.ts) and host names (guest-network.ts), as the API checks them. */
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,39}$/
const HOST_NAME = /^[a-zA-Z0-9][a-zA-Z0-9.-]{0,62}$/

export const NETWORK_FIELDS: Record<string, FieldSchema> = {
  network: {
    expected: 'a network name (letters, digits, ".", "_", "-"; up to 40)',
    check: (v) => isString(v) && NETWORK_NAME.test(v),
    doc: 'The network to join, by name: created by the first VM that names it, joined by the others.',
    example: '"cluster"',
  },
  hostname: {
    expected: 'a host name (letters, digits, "-", "."; up to 63)',
    check: (v) => isString(v) && HOST_NAME.test(v),
    doc: 'The name the other members reach this VM by.',
    default: 'the VM name',
    example: '"db"',
  },
  aliases: {
    expected: 'an array of host names',
    check: (v) => Array.isArray(v) && v.every((a) => isString(a) && HOST_NAME.test(a)),
    doc: "More names for the VM on this network (testcontainers' network aliases).",
    default: '[]',
    example: '["primary"]',
  },
}

export const VM_FIELDS: Record<string, FieldSchema> = {
  name: {
    expected: 'a VM name (letters, digits, "-", "_", ".")',
    check: (v) => isString(v) && /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(v),
    doc: 'VM name and guest hostname. Generated when absent; a fixed name lets only one such VM run at a time.',
    example: '"db"',
  },
  image: {
    expected: 'a path to a disk image (qcow2 or raw) or an [image] table',
    check: isString,
    doc: "Boot this disk image's userspace instead of the host's (image mode). A string is an existing qcow2 or raw image (whole-disk filesystem or partitioned, root on an ext4 partition); each VM gets its own qcow2 overlay and the image is never written. A table builds a Debian image (see [image]).",
    example: '"images/base.qcow2"',
    path: true,
    diskImage: true,
    stringOrTable: true,
    fields: IMAGE_FIELDS,
  },
  provision: {
    expected: 'an array of shell commands',
    check: (v) => Array.isArray(v) && v.every(isString),
    doc: 'Image mode: commands run once, in order, on a fresh VM of the image; the resulting disk is cached as a layer keyed by the image and the commands, and later VMs boot from it.',
    default: '[]',
    example: '["apt-get install -y --no-install-recommends curl"]',
  },
  mounts: {
    expected: 'an array of tables { host, guest, writable }',
    check: Array.isArray,
    doc: 'Host directories shared with the guest over 9p ([[mounts]] tables).',
    default: '[]',
    example: '[{ host = ".", guest = "/mnt/project" }]',
    arrayOfTables: true,
    fields: MOUNT_FIELDS,
  },
  networks: {
    expected: 'an array of network names or tables { network, hostname, aliases }',
    check: Array.isArray,
    doc: 'Networks between VMs to join, by name ([[networks]] tables, or names): a NIC each next to the user-mode one, an address, and every member reachable by name. See docs/networks.md.',
    default: '[]',
    example: '["cluster"]',
    arrayOfTables: true,
    fields: NETWORK_FIELDS,
    stringEntry: { expected: 'a network name', check: (v) => NETWORK_NAME.test(v) },
  },
  memoryMiB: {
    expected: 'a positive integer (MiB)',
    check: isPositiveInt,
    doc: "Guest memory, at most the host's MemTotal (allocated only as the guest touches it).",
    default: '1024',
    example: '2048',
  },
  cpus: {
    expected: 'a positive integer',
    check: isPositiveInt,
    doc: 'Virtual CPUs.',
    default: '2',
    example: '4',
  },
  kernel: {
    expected:
      'a kernel name (debian:trixie, debian:bookworm/rt, ...) or a path to a kernel (vmlinux, bzImage) or a kernel directory',
    check: isString,
    doc: "Guest kernel: a name (`debian:bullseye`, `debian:trixie`, `debian:bookworm-backports`, `debian:bookworm/rt`, `debian:bookworm@6.1.0-57`; fetched from Debian's archive on first use, see docs/any-kernel.md) or a path. Also the kernel image mode boots the image's userspace with.",
    default: 'debian:bookworm, fetched on first use',
    example: '"debian:trixie"',
    path: true,
    kernelName: true,
  },
  kernelArgs: {
    expected: 'an array of strings',
    check: isStrings,
    doc: "Extra kernel command line parameters. init= and rdinit= are refused: vmctl's own init must run to mount the root and start the agent.",
    default: '[]',
    example: '["nokaslr"]',
  },
  qemuArgs: {
    expected: 'an array of strings',
    check: isStrings,
    doc: 'Extra QEMU arguments, appended verbatim.',
    default: '[]',
    example: '["-device", "virtio-balloon-device"]',
  },
  ports: {
    expected: 'an array of ports: TCP port numbers (1-65535), or "N/udp" for UDP',
    check: (v) => Array.isArray(v) && v.every((p) => parseGuestPort(p) !== undefined),
    doc: 'Guest ports forwarded from 127.0.0.1 (host port chosen free; see vm.forwardedPort()): numbers are TCP, "53/udp" is UDP.',
    default: '[]',
    example: '[5432, "53/udp"]',
  },
  env: {
    expected: 'a table of strings',
    check: (v) =>
      typeof v === 'object' &&
      v !== null &&
      !Array.isArray(v) &&
      Object.values(v).every((s) => typeof s === 'string'),
    doc: 'Environment added to every command run in the VM.',
    default: '{}',
    example: '{ PGDATA = "/var/lib/pg" }',
  },
  bootTimeoutMs: {
    expected: 'a positive integer (milliseconds)',
    check: isPositiveInt,
    doc: 'How long the VM may take to answer its agent.',
    default: '30000 (KVM), 180000 (TCG)',
    example: '300000',
  },
  accel: {
    expected: '"auto", "kvm" or "tcg"',
    check: oneOf('auto', 'kvm', 'tcg'),
    doc: 'Accelerator: KVM when usable, else TCG.',
    default: '"auto"',
    example: '"tcg"',
  },
  transport: {
    expected: '"auto", "vsock" or "virtio-serial"',
    check: oneOf('auto', 'vsock', 'virtio-serial'),
    doc: 'How the host reaches the guest agent.',
    default: '"auto"',
    example: '"virtio-serial"',
  },
  hostRoot: {
    expected: 'a host directory path or false',
    check: (v) => v === false || isString(v),
    doc: "Kernel mode: host directory shared read-only as the guest's root (tmpfs overlay on top); false for a root with only busybox and the agent. Ignored with image.",
    default: '"/"',
    example: 'false',
    path: true,
  },
}
