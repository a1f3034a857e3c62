import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { loadExeca } from '../host/lazy-execa.js'
import { which } from '../host/qemu-locator.js'
import { extractVmlinux, PayloadFormatError } from './bzimage.js'
import { unpackDebData } from './deb-unpack.js'
import { downloadPackage, type FoundPackage } from './debian-archive.js'
import { listModules, writeModulesDep } from './module-deps.js'

export interface KernelFetchPhases {
  /** Release file and Packages indexes. */
  indexMs: number
  downloadMs: number
  /** data.tar.xz → the module tree, vmlinuz, config. */
  unpackMs: number
  /** modules.dep (and depmod's indexes when the host has depmod), vmlinux. */
  prepareMs: number
}

/** A kernel in the cache: `$CACHE/kernels/<release>`, and whether this call fetched it. */
export interface CachedKernel {
  release: string
  /** `$CACHE/kernels/<release>`, laid out as kernel-locator.ts reads it. */
  dir: string
  /** false when it was already in the cache. */
  fetched: boolean
  phases?: KernelFetchPhases
  downloadBytes?: number
}

/** `linux-image-6.1.0-57-amd64` → `6.1.0-57-amd64` (what `uname -r` says in the guest). */
export function releaseOfPackage(versioned: string): string {
  return versioned.slice('linux-image-'.length).replace(/-unsigned$/, '')
}

/**
 * Installs one of Debian's versioned kernel packages into `kernels/<release>` unless it is there:
 *   {vmlinuz,vmlinux,config,release,.complete,lib/modules/<release>/...}
 * Made in a staging directory and renamed into place; the caller holds the kernels lock, so a
 * staging directory found here is a killed run's leftover. A failed fetch leaves nothing.
 */
export async function installKernelPackage(
  kernels: string,
  found: FoundPackage,
  env: NodeJS.ProcessEnv,
  say: (line: string) => void,
  indexMs: number,
): Promise<CachedKernel> {
  const versioned = found.name
  const release = releaseOfPackage(versioned)
  const dir = join(kernels, release)
  if (existsSync(join(dir, '.complete'))) return { release, dir, fetched: false }
  for (const entry of readdirSync(kernels))
    if (/^\.(stage|default)-/.test(entry)) rmSync(join(kernels, entry), { recursive: true, force: true })
  let mark = Date.now()
  const lap = () => {
    const now = Date.now()
    const ms = now - mark
    mark = now
    return ms
  }
  say(`fetching Debian's ${versioned} ${found.stanza.get('Version')} (${found.source.suite}) into ${kernels}`)
  const stage = mkdtempSync(join(kernels, '.stage-'))
  chmodSync(stage, 0o755)
  try {
    const deb = join(stage, 'package.deb')
    await downloadPackage(found, deb, versioned)
    const downloadMs = lap()
    const root = join(stage, 'root')
    mkdirSync(root)
    const wanted = [`boot/vmlinuz-${release}`, `boot/config-${release}`]
    const modules = [`lib/modules/${release}/`, `usr/lib/modules/${release}/`]
    await unpackDebData(deb, root, (path) => wanted.includes(path) || modules.some((m) => path.startsWith(m)))
    rmSync(deb)
    if (!existsSync(join(root, wanted[0]!))) throw new Error(`${versioned} has no ${wanted[0]}`)
    renameSync(join(root, wanted[0]!), join(stage, 'vmlinuz'))
    if (existsSync(join(root, wanted[1]!))) renameSync(join(root, wanted[1]!), join(stage, 'config'))
    const modulesFrom = modules.map((m) => join(root, m)).find((m) => existsSync(m))
    if (!modulesFrom) throw new Error(`${versioned} has no lib/modules/${release}`)
    mkdirSync(join(stage, 'lib/modules'), { recursive: true })
    renameSync(modulesFrom, join(stage, 'lib/modules', release))
    rmSync(root, { recursive: true, force: true })
    const unpackMs = lap()

    await prepareModules(stage, release, env)
    try {
      writeFileSync(join(stage, 'vmlinux'), await extractVmlinux(readFileSync(join(stage, 'vmlinuz'))))
    } catch (error) {
      // Without a vmlinux QEMU boots the bzImage: slower (the in-guest decompressor), but it boots.
      if (!(error instanceof PayloadFormatError)) throw error
      say(`${error.message}: booting the bzImage itself (slower than a vmlinux)`)
    }
    writeFileSync(join(stage, 'release'), `${release}\n`)
    writeFileSync(
      join(stage, 'package'),
      `${versioned} ${found.stanza.get('Version')} ${found.source.suite}\n`,
    )
    writeFileSync(join(stage, '.complete'), '')
    const prepareMs = lap()

    rmSync(dir, { recursive: true, force: true })
    renameSync(stage, dir)
    const phases = { indexMs, downloadMs, unpackMs, prepareMs }
    const seconds = (ms: number) => (ms / 1000).toFixed(1)
    say(
      `guest kernel ${release} installed in ${dir} (index ${seconds(indexMs)} s, download ${seconds(downloadMs)} s, unpack ${seconds(unpackMs)} s, prepare ${seconds(prepareMs)} s)`,
    )
    return { release, dir, fetched: true, phases, downloadBytes: Number(found.stanza.get('Size')) }
  } catch (error) {
    rmSync(stage, { recursive: true, force: true })
    throw error
  }
}

/**
 * modules.dep, computed here from each module's .modinfo: what the initramfs needs (the boot
 * modules in dependency order), on any host. When the host has kmod's depmod (nearly every Linux
 * distribution does) it runs first, for the binary indexes (modules.dep.bin, modules.alias.bin, ...)
 * that kmod's modprobe in the guest reads when the kernel asks for a module (`ip link add type
 * bridge`); the guest's modprobe is the host's own in kernel mode, so a host without depmod has no
 * modprobe to give the guest either. modules.dep itself is always this function's, so the cache
 * (and the initramfs made from it) is the same on every host.
 */
export async function prepareModules(
  kernelDir: string,
  release: string,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  const depmod = which('depmod', `${env.PATH ?? ''}:/usr/sbin:/sbin`)
  const modulesDir = join(kernelDir, 'lib/modules', release)
  let depmodWrote = false
  if (depmod) {
    const execa = await loadExeca()
    const result = await execa(depmod, ['-b', kernelDir, release], { reject: false, stdin: 'ignore' })
    depmodWrote = result.exitCode === 0 && existsSync(join(modulesDir, 'modules.dep'))
  }
  // Compressed modules (trixie's 4,000 .ko.xz): reading each .modinfo means decompressing every
  // module in WebAssembly, a minute and more on a busy host; depmod's modules.dep lists the same
  // modules, so it is kept where depmod ran.
  if (depmodWrote && listModules(modulesDir).some((m) => !m.endsWith('.ko'))) return
  await writeModulesDep(modulesDir)
}
