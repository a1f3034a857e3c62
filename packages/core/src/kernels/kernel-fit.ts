import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { VmctlError } from '../errors.js'
import type { ResolvedKernel } from '../host/kernel-locator.js'
import { moduleName } from '../initramfs/module-order.js'

/** What a VM needs of its kernel, by the mode it boots in. */
export interface KernelNeeds {
  /** Kernel mode: the host's root over virtio-9p with an overlay on top. */
  hostRoot: boolean
  transport: 'vsock' | 'virtio-serial'
}

interface Feature {
  what: string
  options: string[]
  modules: string[]
}

/** microvm's devices are virtio-mmio; the runtime disk is ext4 on virtio-blk (init-script.ts). */
const ALWAYS: Feature[] = [
  { what: 'virtio-mmio (microvm has no PCI)', options: ['CONFIG_VIRTIO_MMIO'], modules: ['virtio_mmio'] },
  {
    what: 'a virtio block driver (vmctl runtime disk)',
    options: ['CONFIG_VIRTIO_BLK'],
    modules: ['virtio_blk'],
  },
  { what: 'ext4 (vmctl runtime disk)', options: ['CONFIG_EXT4_FS'], modules: ['ext4'] },
  { what: 'devtmpfs', options: ['CONFIG_DEVTMPFS'], modules: [] },
  // microvm lists its virtio-mmio devices in ACPI tables only (QEMU puts them on the command line
  // just when the machine's ACPI is off, and vmctl keeps it on). Without CONFIG_PCI, 6.1's ACPICA
  // refuses its PCI_Config handler and loads no namespace at all ("AE_BAD_PARAMETER, During Region
  // initialization"): the boot then finds no device. Found with a tinyconfig build.
  {
    what: "ACPI with PCI (microvm's devices are in its ACPI tables)",
    options: ['CONFIG_ACPI', 'CONFIG_PCI'],
    modules: [],
  },
  { what: 'an initramfs', options: ['CONFIG_BLK_DEV_INITRD'], modules: [] },
]
const HOST_ROOT: Feature[] = [
  {
    what: "9p over virtio (the host's root)",
    options: ['CONFIG_NET_9P', 'CONFIG_NET_9P_VIRTIO', 'CONFIG_9P_FS'],
    modules: ['9pnet', '9pnet_virtio', '9p'],
  },
  {
    what: 'overlayfs (the writable layer over the root)',
    options: ['CONFIG_OVERLAY_FS'],
    modules: ['overlay'],
  },
]
const SERIAL: Feature = {
  what: "a virtio console (the agent's port)",
  options: ['CONFIG_VIRTIO_CONSOLE'],
  modules: ['virtio_console'],
}

/**
 * Refuses, before anything boots, a kernel that cannot work in the chosen mode: one error naming
 * what is missing and the ways out. Reads the kernel's config (beside it, in its build tree or
 * /boot) or, without one, its modules.builtin and modules.dep; a kernel with neither is not judged.
 * Reads a few small files: a few milliseconds.
 */
export function checkKernelFits(kernel: ResolvedKernel, needs: KernelNeeds): void {
  const config = kernelConfig(kernel)
  const modules = moduleNames(kernel.modulesDir, 'modules.dep')
  const builtin = moduleNames(kernel.modulesDir, 'modules.builtin')
  if (!config && !modules && !builtin) return
  const features = [
    ...ALWAYS,
    ...(needs.hostRoot ? HOST_ROOT : []),
    ...(needs.transport === 'virtio-serial' ? [SERIAL] : []),
  ]
  const missing: string[] = []
  const unloadable: string[] = []
  for (const feature of features) {
    if (config) {
      const values = feature.options.map((o) => config.get(o))
      const absent = feature.options.filter((_, i) => values[i] !== 'y' && values[i] !== 'm')
      if (absent.length) {
        missing.push(`${feature.what}: ${absent.map((o) => `${o} is not set`).join(', ')}`)
        continue
      }
      const asModules = feature.options.filter((_, i) => values[i] === 'm')
      if (asModules.length && !feature.modules.every((m) => modules?.has(m) || builtin?.has(m)))
        unloadable.push(`${feature.what}: ${asModules.map((o) => `${o}=m`).join(', ')}`)
    } else if (feature.modules.length && !feature.modules.every((m) => modules?.has(m) || builtin?.has(m))) {
      missing.push(
        `${feature.what}: no ${feature.modules.filter((m) => !modules?.has(m) && !builtin?.has(m)).join(', ')} module, built in or beside it`,
      )
    }
  }
  if (!missing.length && !unloadable.length) return
  const name = `${kernel.image}${kernel.release ? ` (${kernel.release})` : ''}`
  const lines = [`the kernel ${name} cannot boot this VM:`]
  for (const m of missing) lines.push(`  missing ${m}`)
  for (const u of unloadable) lines.push(`  not loadable ${u}, and vmctl found no module tree for it`)
  const fixes: string[] = []
  if (
    needs.hostRoot &&
    missing.some((m) => /9p|overlay/.test(m)) &&
    missing.every((m) => /9p|overlay/.test(m))
  )
    fixes.push(
      "hostRoot: false (a root of busybox and the agent) or an image (image: { distribution: 'bookworm' } or a path): neither needs 9p",
    )
  if (missing.length)
    fixes.push(
      `a kernel with the options above (=y, or =m with its modules), e.g. debian:${/cloud/.test(kernel.release ?? '') ? 'bookworm (the generic kernel, not -cloud-)' : 'bookworm'}`,
    )
  if (unloadable.length)
    fixes.push(
      'put its modules beside it (make modules_install INSTALL_MOD_PATH=DIR, with DIR/lib/modules/RELEASE next to the image or INSTALL_MOD_PATH set), or build those options in (=y)',
    )
  lines.push(`Fix: ${fixes.join('; or ')}`)
  throw new VmctlError('KERNEL_UNFIT', lines.join('\n'))
}

/** What checkKernelFits requires, in all: a change to it is a change to every cached verdict. */
export const FIT_RULES = JSON.stringify({ ALWAYS, HOST_ROOT, SERIAL })

/** The files checkKernelFits may read for `kernel`: its config's candidates, then its module lists. */
export function kernelFitInputs(kernel: ResolvedKernel): string[] {
  const modules = kernel.modulesDir
    ? [join(kernel.modulesDir, 'modules.dep'), join(kernel.modulesDir, 'modules.builtin')]
    : []
  return [...configCandidates(kernel), ...modules]
}

/** The kernel's .config as option → value ('y', 'm', a string), from the first place that has it. */
export function kernelConfig(kernel: ResolvedKernel): Map<string, string> | undefined {
  for (const path of configCandidates(kernel)) {
    let text: string
    try {
      const raw = readFileSync(path)
      text = (path.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8')
    } catch {
      continue
    }
    if (!/^CONFIG_|^# CONFIG_/m.test(text)) continue
    const config = new Map<string, string>()
    for (const line of text.split('\n')) {
      const match = /^(CONFIG_\w+)=(.*)$/.exec(line)
      if (match) config.set(match[1]!, match[2]!)
    }
    return config
  }
  return undefined
}

/** Where a kernel's .config may be, in the order kernelConfig tries them. */
function configCandidates(kernel: ResolvedKernel): string[] {
  const here = dirname(kernel.image)
  const release = kernel.release
  return [
    join(here, 'config'),
    ...(release ? [join(here, `config-${release}`), join(here, '..', 'boot', `config-${release}`)] : []),
    join(here, '.config'),
    // A build tree: arch/x86/boot/bzImage, with .config at the top.
    join(here, '..', '..', '..', '.config'),
    ...(kernel.modulesDir
      ? [join(kernel.modulesDir, 'config'), join(kernel.modulesDir, 'build', '.config')]
      : []),
    ...(release ? [`/boot/config-${release}`] : []),
  ]
}

function moduleNames(modulesDir: string | undefined, file: string): Set<string> | undefined {
  if (!modulesDir || !existsSync(join(modulesDir, file))) return undefined
  const names = new Set<string>()
  for (const line of readFileSync(join(modulesDir, file), 'utf8').split('\n')) {
    const path = line.split(':')[0]!.trim()
    if (path) names.add(moduleName(path))
  }
  return names
}
