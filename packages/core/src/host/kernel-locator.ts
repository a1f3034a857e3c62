import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
} from 'node:fs'
import { release as osRelease } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { KernelNotFoundError } from '../errors.js'
import { cacheDir, SETUP_COMMAND } from '../paths.js'

export interface ResolvedKernel {
  /** What QEMU loads with -kernel: an uncompressed ELF vmlinux (PVH entry) or a bzImage. */
  image: string
  format: 'elf' | 'bzimage'
  /** `uname -r` of the guest kernel, when known. */
  release: string | undefined
  /** The kernel's module tree (with modules.dep), when it has one. */
  modulesDir: string | undefined
  /** Where it was found, for messages: "option", "VMCTL_KERNEL", "cache", "host /boot". */
  source: string
}

export interface KernelSearch {
  explicit?: string | undefined
  env?: NodeJS.ProcessEnv
  hostRelease?: string
}

/**
 * Finds the guest kernel by a chain: the explicit option, $VMCTL_KERNEL, vmctl's cache (put there by
 * setup), then the host's own /boot/vmlinuz-$(uname -r) when readable. One error lists every place
 * tried and names the fix.
 */
export function locateKernel(search: KernelSearch = {}): ResolvedKernel {
  const env = search.env ?? process.env
  const tried: string[] = []
  const candidates: Array<[string, string | undefined, boolean]> = [
    ['option kernel', search.explicit, true],
    ['$VMCTL_KERNEL', env.VMCTL_KERNEL, true],
    ['cache', join(cacheDir(env), 'kernels', 'default'), false],
    ['host /boot', `/boot/vmlinuz-${search.hostRelease ?? osRelease()}`, false],
  ]
  for (const [source, path, mustExist] of candidates) {
    if (!path) continue
    const resolved = resolveKernelPath(path, source)
    if (resolved) return resolved
    tried.push(`${source}: ${path} (${describeMissing(path)})`)
    // An explicit choice that does not work is an error, not a reason to pick another kernel.
    if (mustExist) throw new KernelNotFoundError(tried, SETUP_COMMAND)
  }
  throw new KernelNotFoundError(tried, SETUP_COMMAND)
}

/** A kernel file, or a directory laid out like the cache (vmlinux or vmlinuz, lib/modules/REL). */
export function resolveKernelPath(path: string, source: string): ResolvedKernel | undefined {
  let stat: ReturnType<typeof statSync>
  try {
    stat = statSync(path)
  } catch {
    return undefined
  }
  if (stat.isDirectory()) {
    const release = readTrimmed(join(path, 'release'))
    const image = [join(path, 'vmlinux'), join(path, 'vmlinuz')].find((p) => readable(p))
    if (!image) return undefined
    const modulesDir =
      release && existsSync(join(path, 'lib/modules', release))
        ? join(path, 'lib/modules', release)
        : undefined
    return { image, format: kernelFormat(image) ?? 'bzimage', release, modulesDir, source }
  }
  if (!readable(path)) return undefined
  const format = kernelFormat(path)
  if (!format) return undefined
  const release = format === 'bzimage' ? bzImageRelease(path) : readTrimmed(join(dirname(path), 'release'))
  const modulesDir = release ? findModules(path, release) : undefined
  return { image: path, format, release, modulesDir, source }
}

function findModules(image: string, release: string): string | undefined {
  for (const dir of [
    join(dirname(image), 'lib/modules', release),
    join(dirname(image), '..', 'lib/modules', release),
    `/lib/modules/${release}`,
  ]) {
    if (existsSync(join(dir, 'modules.dep'))) return dir
  }
  return undefined
}

/** ELF (vmlinux) or bzImage ("HdrS" at 0x202); undefined for anything else. */
export function kernelFormat(path: string): 'elf' | 'bzimage' | undefined {
  const head = readBytes(path, 0, 0x210)
  if (head.length >= 4 && head.readUInt32BE(0) === 0x7f454c46) return 'elf'
  if (head.length >= 0x206 && head.toString('latin1', 0x202, 0x206) === 'HdrS') return 'bzimage'
  return undefined
}

/** The release string a bzImage carries in its setup header (kernel_version at 0x20e). */
export function bzImageRelease(path: string): string | undefined {
  const head = readBytes(path, 0, 0x210)
  if (head.length < 0x210) return undefined
  const offset = head.readUInt16LE(0x20e)
  if (!offset) return undefined
  const text = readBytes(path, offset + 0x200, 256).toString('latin1')
  const release = text.slice(0, text.indexOf('\0') >= 0 ? text.indexOf('\0') : undefined).split(' ')[0]
  return release || undefined
}

function readBytes(path: string, position: number, length: number): Buffer {
  const fd = openSync(path, 'r')
  try {
    const buf = Buffer.alloc(length)
    const n = readSync(fd, buf, 0, length, position)
    return buf.subarray(0, n)
  } finally {
    closeSync(fd)
  }
}

function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK)
    return statSync(path).isFile()
  } catch {
    return false
  }
}

function readTrimmed(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim() || undefined
  } catch {
    return undefined
  }
}

function describeMissing(path: string): string {
  try {
    statSync(path)
  } catch {
    return 'does not exist'
  }
  if (statSync(path).isDirectory()) return 'a directory without a readable vmlinux or vmlinuz'
  if (!readable(path)) return 'not readable'
  return `not a kernel image (${basename(path)} is neither a vmlinux ELF nor a bzImage)`
}
