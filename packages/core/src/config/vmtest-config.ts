import { existsSync, readFileSync, statSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import { parse, TomlError } from 'smol-toml'
import { VmctlError } from '../errors.js'
import { isKernelName, parseKernelName } from '../kernels/kernel-name.js'
import { firstLine } from '../util/first-line.js'
import type { VmOptions } from '../vm/vm-options.js'

/**
 * vmtest's configuration (`vmtest.toml`, danobi/vmtest's docs/config.md): `[[target]]` tables, each
 * a VM and a command. Every field is mapped to vmctl's options, or refused with its name when vmctl
 * cannot honour it; none is silently ignored.
 */
export interface VmtestTarget {
  name: string
  /** Kernel targets share the host's root (or `rootfs`); image targets boot the image's userspace. */
  mode: 'kernel' | 'image'
  options: VmOptions
  command: string
  /** Where the command runs: the config's directory (seen at its own path, or at /mnt/vmtest). */
  cwd: string
}

const TARGET_FIELDS = ['name', 'kernel', 'image', 'uefi', 'kernel_args', 'rootfs', 'arch', 'command', 'vm']
const VM_FIELDS = ['num_cpus', 'memory', 'mounts', 'bios', 'extra_args']
const MOUNT_FIELDS = ['host_path', 'writable']
/** Where vmtest puts the directory holding vmtest.toml in the guest. */
export const VMTEST_MOUNT = '/mnt/vmtest'

export class VmtestConfigError extends VmctlError {
  constructor(file: string, message: string) {
    super('CONFIG_INVALID', `${file}: ${message}`)
  }
}

/** True for a TOML file written for vmtest (it has `[[target]]`), not a vmctl.toml. */
export function isVmtestConfig(file: string): boolean {
  try {
    return /^\s*\[\[target\]\]/m.test(readFileSync(file, 'utf8'))
  } catch {
    return false
  }
}

export function loadVmtestConfig(file: string): VmtestTarget[] {
  const path = resolve(file)
  let data: Record<string, unknown>
  try {
    data = parse(readFileSync(path, 'utf8')) as Record<string, unknown>
  } catch (error) {
    if (error instanceof TomlError)
      throw new VmtestConfigError(path, `invalid TOML: ${firstLine(error.message)}`)
    throw new VmtestConfigError(
      path,
      `cannot read it (${(error as Error).message}). Fix: pass the right path with -c`,
    )
  }
  const base = dirname(path)
  const fail = (message: string): never => {
    throw new VmtestConfigError(path, message)
  }
  for (const key of Object.keys(data))
    if (key !== 'target') fail(`unknown section ${key}; vmtest's config has [[target]] only`)
  const targets = data.target
  if (!Array.isArray(targets) || targets.length === 0)
    fail('no [[target]]; each target needs name, command and kernel or image')
  return (targets as Array<Record<string, unknown>>).map((target, i) => {
    const at = `target ${i + 1}${typeof target.name === 'string' ? ` (${target.name})` : ''}`
    const bad = (message: string) => fail(`${at}: ${message}`)
    for (const key of Object.keys(target))
      if (!TARGET_FIELDS.includes(key))
        bad(`unknown field ${key}; vmtest's fields are ${TARGET_FIELDS.join(', ')}`)
    const str = (key: string): string | undefined => {
      const value = target[key]
      if (value === undefined) return undefined
      if (typeof value !== 'string' || value === '') bad(`${key} must be a non-empty string`)
      return value as string
    }
    const name = str('name') ?? bad('name is required')
    const command = str('command') ?? bad('command is required')
    const kernel = str('kernel')
    const image = str('image')
    if (!kernel && !image) bad('one of kernel and image is required')
    if (target.uefi !== undefined && target.uefi !== false)
      bad(
        'uefi = true cannot be honoured: vmctl boots the kernel directly on a microvm, without firmware. Fix: remove uefi (an image target boots with vmctl’s kernel and the image’s userspace)',
      )
    const arch = str('arch')
    if (arch && arch !== 'x86_64')
      bad(
        `arch = "${arch}" cannot be honoured: vmctl runs x86_64 guests only. Fix: remove arch, or run this target with vmtest`,
      )
    const kernelArgs = str('kernel_args')
    if (kernelArgs && !kernel) bad('kernel_args needs kernel (as in vmtest)')
    const rootfs = str('rootfs')
    if (rootfs && !kernel) bad('rootfs needs kernel (as in vmtest)')
    const local = (p: string) => (isAbsolute(p) ? p : resolve(base, p))
    const options: VmOptions = {
      mounts: [{ host: base, guest: VMTEST_MOUNT, writable: true }],
    }
    if (kernel) options.kernel = isKernelName(kernel) ? parseKernelName(kernel).text : local(kernel)
    if (options.kernel && !isKernelName(options.kernel) && !existsSync(options.kernel))
      bad(`kernel ${options.kernel} does not exist (relative paths start at the config's directory)`)
    if (image) {
      options.image = local(image)
      if (!existsSync(options.image)) bad(`image ${options.image} does not exist`)
    }
    if (kernelArgs) options.kernelArgs = kernelArgs.split(/\s+/).filter(Boolean)
    if (rootfs) {
      const root = local(rootfs)
      if (!existsSync(root) || !statSync(root).isDirectory()) bad(`rootfs ${root} is not a directory`)
      options.hostRoot = root
    }
    const vm = target.vm as Record<string, unknown> | undefined
    if (vm !== undefined) {
      if (typeof vm !== 'object' || vm === null || Array.isArray(vm)) bad('vm must be a table ([target.vm])')
      for (const key of Object.keys(vm))
        if (!VM_FIELDS.includes(key))
          bad(`unknown field vm.${key}; vmtest's vm fields are ${VM_FIELDS.join(', ')}`)
      if (vm.num_cpus !== undefined) {
        const n = Number(vm.num_cpus)
        if (!Number.isInteger(n) || n <= 0) bad('vm.num_cpus must be a positive integer')
        options.cpus = n
      }
      if (vm.memory !== undefined)
        options.memoryMiB =
          memoryMiB(String(vm.memory)) ?? bad(`vm.memory "${vm.memory}" is not a size like 512M or 4G`)
      if (vm.bios !== undefined)
        bad('vm.bios cannot be honoured: it is for uefi, and vmctl boots without firmware. Fix: remove it')
      if (vm.extra_args !== undefined) {
        if (!Array.isArray(vm.extra_args) || !vm.extra_args.every((a) => typeof a === 'string'))
          bad('vm.extra_args must be an array of strings')
        options.qemuArgs = vm.extra_args as string[]
      }
      if (vm.mounts !== undefined) {
        if (typeof vm.mounts !== 'object' || vm.mounts === null)
          bad('vm.mounts must be a table of guest path = { host_path, writable }')
        for (const [guest, mount] of Object.entries(vm.mounts as Record<string, Record<string, unknown>>)) {
          for (const key of Object.keys(mount))
            if (!MOUNT_FIELDS.includes(key))
              bad(`unknown field vm.mounts."${guest}".${key}; fields: host_path, writable`)
          if (typeof mount.host_path !== 'string') bad(`vm.mounts."${guest}" needs host_path`)
          options.mounts!.push({
            host: local(mount.host_path as string),
            guest,
            writable: mount.writable === true,
          })
        }
      }
    }
    // A kernel target sees the host's tree where it is; an image target only at /mnt/vmtest.
    return {
      name,
      mode: image ? 'image' : 'kernel',
      options,
      command,
      cwd: image || rootfs ? VMTEST_MOUNT : base,
    }
  })
}

/** QEMU's -m sizes: 512, 512M, 4G, 4096K (a bare number is MiB). */
export function memoryMiB(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$/i.exec(text.trim())
  if (!match) return undefined
  const scale = { '': 1, K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 }[match[2]!.toUpperCase()]!
  const mib = Math.round(Number(match[1]) * scale)
  return mib > 0 ? mib : undefined
}
