import { createHash } from 'node:crypto'
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { KernelFetchError } from '../errors.js'
import { withLock } from '../host/cross-process-lock.js'
import { loadExeca } from '../host/lazy-execa.js'
import { which } from '../host/qemu-locator.js'
import { SETUP_COMMAND } from '../paths.js'
import { extractVmlinux } from './bzimage.js'
import { unpackDebData } from './deb-unpack.js'
import { dependsNames } from './deb822.js'
import { archiveSources, downloadPackage, findInArchive } from './debian-archive.js'
import { writeModulesDep } from './module-deps.js'
import { type DefaultKernel, installedDefaultKernel } from './resolve-kernel.js'

/** The metapackage whose Depends names the current kernel of the suite. */
const KERNEL_METAPACKAGE = 'linux-image-amd64'

export interface KernelFetchPhases {
  /** Release file and Packages indexes. */
  indexMs: number
  downloadMs: number
  /** data.tar.xz → the module tree, vmlinuz, config. */
  unpackMs: number
  /** modules.dep (and depmod's indexes when the host has depmod), vmlinux. */
  prepareMs: number
}

/**
 * Makes sure the cache has Debian's generic amd64 kernel as its default, fetching it when it has
 * none: the versioned package `linux-image-amd64` depends on, downloaded from the archive over
 * HTTP(S) and unpacked in Node (no apt, no dpkg), laid out as
 *   $CACHE/kernels/<release>/{vmlinuz,vmlinux,config,release,.complete,lib/modules/<release>/...}
 *   $CACHE/kernels/default -> <release>
 * Why the generic kernel: Debian's -cloud- kernel has no 9p at all, and kernel mode shares the host
 * root over virtio-9p; its virtio, 9p, overlay and vsock drivers are modules that vmctl's
 * initramfs loads. Made in a staging directory and renamed into place, under a cross-process lock:
 * concurrent test workers fetch it once, and a failed or killed fetch leaves nothing that a later
 * run would trust.
 */
export async function ensureDefaultKernel(
  cacheDir: string,
  env: NodeJS.ProcessEnv = process.env,
  say: (line: string) => void = (line) => process.stderr.write(`vmctl: ${line}\n`),
): Promise<DefaultKernel> {
  const ready = installedDefaultKernel(cacheDir)
  if (ready) return ready
  const kernels = join(cacheDir, 'kernels')
  mkdirSync(kernels, { recursive: true })
  const lock = `vmctl-kernel-${createHash('sha256').update(kernels).digest('hex').slice(0, 16)}`
  return withLock(
    lock,
    async () => installedDefaultKernel(cacheDir) ?? fetchKernel(kernels, env, say),
    () => say('waiting for another process fetching the guest kernel'),
  )
}

async function fetchKernel(
  kernels: string,
  env: NodeJS.ProcessEnv,
  say: (line: string) => void,
): Promise<DefaultKernel> {
  // Under the lock, a staging directory (or a link not yet renamed) is a killed run's leftover.
  for (const entry of readdirSync(kernels))
    if (/^\.(stage|default)-/.test(entry)) rmSync(join(kernels, entry), { recursive: true, force: true })
  let mark = Date.now()
  const lap = () => {
    const now = Date.now()
    const ms = now - mark
    mark = now
    return ms
  }
  const sources = archiveSources(env)
  const meta = await findInArchive(sources, KERNEL_METAPACKAGE)
  const versioned = dependsNames(meta?.stanza.get('Depends')).find((name) => /^linux-image-\d/.test(name))
  const found = versioned ? await findInArchive(sources, versioned) : undefined
  const where = sources.map((s) => `${s.mirror} ${s.suite}`).join(', ')
  if (!found || !versioned)
    throw new KernelFetchError(
      where,
      `no ${versioned ?? KERNEL_METAPACKAGE} in the archive's amd64 main index`,
      SETUP_COMMAND,
    )
  const release = versioned.slice('linux-image-'.length)
  const dir = join(kernels, release)
  if (existsSync(join(dir, '.complete'))) {
    linkDefault(kernels, release)
    return { release, dir, fetched: false }
  }
  const indexMs = lap()
  say(
    `no guest kernel in ${kernels}; fetching Debian's ${versioned} ${found.stanza.get('Version')} (${found.source.suite})`,
  )
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
    renameSync(join(root, wanted[0]!), join(stage, 'vmlinuz'))
    renameSync(join(root, wanted[1]!), join(stage, 'config'))
    const modulesFrom = modules.map((m) => join(root, m)).find((m) => existsSync(m))
    if (!modulesFrom) throw new Error(`${versioned} has no lib/modules/${release}`)
    mkdirSync(join(stage, 'lib/modules'), { recursive: true })
    renameSync(modulesFrom, join(stage, 'lib/modules', release))
    rmSync(root, { recursive: true, force: true })
    const unpackMs = lap()

    await prepareModules(stage, release, env)
    writeFileSync(join(stage, 'vmlinux'), await extractVmlinux(readFileSync(join(stage, 'vmlinuz'))))
    writeFileSync(join(stage, 'release'), `${release}\n`)
    writeFileSync(join(stage, '.complete'), '')
    const prepareMs = lap()

    rmSync(dir, { recursive: true, force: true })
    renameSync(stage, dir)
    linkDefault(kernels, release)
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
async function prepareModules(kernelDir: string, release: string, env: NodeJS.ProcessEnv): Promise<void> {
  const depmod = which('depmod', `${env.PATH ?? ''}:/usr/sbin:/sbin`)
  if (depmod) {
    const execa = await loadExeca()
    await execa(depmod, ['-b', kernelDir, release], { reject: false, stdin: 'ignore' })
  }
  await writeModulesDep(join(kernelDir, 'lib/modules', release))
}

/** `default -> <release>`, replaced atomically. */
function linkDefault(kernels: string, release: string): void {
  const temporary = join(kernels, `.default-${process.pid}`)
  rmSync(temporary, { force: true })
  symlinkSync(release, temporary)
  renameSync(temporary, join(kernels, 'default'))
}
