import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { contentHash } from '../host/content-hash.js'
import type { ResolvedKernel } from '../host/kernel-locator.js'
import { loadExeca } from '../host/lazy-execa.js'
import { removeStaleBuilds } from '../host/stale-builds.js'
import { readModuleFile } from '../kernels/module-deps.js'
import { logger } from '../log.js'
import { CpioArchive } from './cpio-archive.js'
import { INIT_SCRIPT } from './init-script.js'
import { moduleLoadOrder } from './module-order.js'
import { sharedLibraries } from './shared-libraries.js'

const log = logger('initramfs')

/**
 * Drivers the init loads before anything else: the virtio transport for microvm (virtio-mmio),
 * the agent's port, networking, the root share and its overlay, entropy. Modules a kernel has
 * built in are simply absent from modules.dep and skipped.
 */
export const BOOT_MODULES = [
  'virtio_mmio',
  'virtio_console',
  'virtio_rng',
  'virtio_blk',
  'crc32c_generic',
  'ext4',
  'virtio_net',
  '9pnet_virtio',
  '9p',
  'overlay',
]

/** Loaded only when the agent talks over vsock (`vmctl_agent=vsock:PORT`). */
export const VSOCK_MODULES = ['vmw_vsock_virtio_transport']

/**
 * The SCSI disk drivers for hot-plugged disks (the VM's virtio-scsi controller, see
 * qemu-command.ts): loaded by the init before the agent starts, so templates hold them
 * (docs/disks.md has the measurement that chose boot over the first attachDisk).
 */
export const DISK_MODULES = ['virtio_scsi', 'sd_mod']

export interface InitramfsInputs {
  kernel: ResolvedKernel
  /** The node binary that runs the agent in the guest (the host's own by default). */
  nodeBinary: string
  busybox: string
  cacheDir: string
}

export interface BuiltInitramfs {
  path: string
  key: string
  missingModules: string[]
}

/**
 * Builds the initramfs (busybox, the boot modules, node's shared libraries, /init), cached by a
 * hash of everything that goes into it. Node itself and the agent come on the runtime disk
 * (runtime-disk.ts): inside the initramfs its 99 MB took ~3 s to unpack under TCG.
 */
export async function buildInitramfs(inputs: InitramfsInputs): Promise<BuiltInitramfs> {
  const busybox = realpathSync(inputs.busybox)
  const nodeBinary = realpathSync(inputs.nodeBinary)
  // Every VM.up() asks; working out the key runs ldd twice and busybox once (~50 ms, a few % of a
  // template restore). The same inputs give the same image: remembered in this process, and on disk
  // for the next one. Content hashes, not paths or mtimes, so the memo holds on another host too.
  const hash = (path: string) => contentHash(path, inputs.cacheDir)
  const modulesDep = inputs.kernel.modulesDir ? join(inputs.kernel.modulesDir, 'modules.dep') : ''
  const memoKey = [
    FORMAT,
    hash(busybox),
    hash(nodeBinary),
    hash(inputs.kernel.image),
    modulesDep && existsSync(modulesDep) ? hash(modulesDep) : 'no modules',
    inputs.kernel.release ?? '',
    // The module lists are the builder's code, not files: without them here a changed list kept
    // finding the image built from the old one.
    [...BOOT_MODULES, '|', ...VSOCK_MODULES, '|', ...DISK_MODULES].join(','),
  ].join('\0')
  const known = builtInThisProcess.get(memoKey) ?? rememberedOnDisk(inputs, memoKey)
  if (known && existsSync(known.path)) {
    builtInThisProcess.set(memoKey, known)
    return known
  }
  const { libraries, ...built } = await buildUncached(inputs, busybox, nodeBinary)
  builtInThisProcess.set(memoKey, built)
  remember(inputs, memoKey, built, libraries)
  return built
}

/**
 * Bumped when the image's layout or its key changes (v2: keys of content, not path and mtime; v3:
 * the lazily loaded disk modules, etc/vmctl/modules-disks).
 */
const FORMAT = 'vmctl-initramfs-v3'

const builtInThisProcess = new Map<string, BuiltInitramfs>()

/**
 * Across processes (each `vmctl` command, each test worker is a new one), a small file per input
 * set remembers the result, with the content hash of every library ldd named: if one of those
 * changed (a libc upgrade), the entry no longer holds and the key is worked out again. It holds the
 * key, not the path, so it stays true when the cache moves to another directory or host.
 */
interface RememberedInitramfs {
  key: string
  missingModules: string[]
  libraries: Array<{ path: string; sha256: string }>
}

function initramfsPath(cacheDir: string, key: string): string {
  return join(cacheDir, 'initramfs', `${key}.cpio`)
}

function memoFile(inputs: InitramfsInputs, memoKey: string): string {
  const hash = createHash('sha256').update(memoKey).update(INIT_SCRIPT)
  return join(inputs.cacheDir, 'initramfs', `memo-${hash.digest('hex').slice(0, 20)}.json`)
}

function rememberedOnDisk(inputs: InitramfsInputs, memoKey: string): BuiltInitramfs | undefined {
  try {
    const entry = JSON.parse(readFileSync(memoFile(inputs, memoKey), 'utf8')) as RememberedInitramfs
    if (entry.libraries.some((library) => contentHash(library.path, inputs.cacheDir) !== library.sha256))
      return undefined
    return {
      path: initramfsPath(inputs.cacheDir, entry.key),
      key: entry.key,
      missingModules: entry.missingModules,
    }
  } catch {
    return undefined
  }
}

function remember(
  inputs: InitramfsInputs,
  memoKey: string,
  built: BuiltInitramfs,
  libraries: string[],
): void {
  try {
    const entry: RememberedInitramfs = {
      key: built.key,
      missingModules: built.missingModules,
      libraries: libraries.map((path) => ({ path, sha256: contentHash(path, inputs.cacheDir) })),
    }
    const file = memoFile(inputs, memoKey)
    writeFileSync(`${file}.${process.pid}`, JSON.stringify(entry))
    renameSync(`${file}.${process.pid}`, file)
  } catch {}
}

async function buildUncached(
  inputs: InitramfsInputs,
  busybox: string,
  nodeBinary: string,
): Promise<BuiltInitramfs & { libraries: string[] }> {
  const modulesDep = inputs.kernel.modulesDir
    ? readIfExists(join(inputs.kernel.modulesDir, 'modules.dep'))
    : undefined
  const { order, missing } = modulesDep
    ? moduleLoadOrder(modulesDep, BOOT_MODULES)
    : { order: [], missing: [] }
  const vsockOrder = modulesDep
    ? moduleLoadOrder(modulesDep, VSOCK_MODULES).order.filter((m) => !order.includes(m))
    : []
  const diskOrder = modulesDep
    ? moduleLoadOrder(modulesDep, DISK_MODULES).order.filter((m) => !order.includes(m))
    : []
  const libraries = [
    ...new Set([...(await sharedLibraries(nodeBinary)), ...(await sharedLibraries(busybox))]),
  ]
  const applets = await busyboxApplets(busybox)

  // What goes in, by content and by its place in the image; nothing of where the inputs sit on
  // this host (the libraries' paths are their places in the image too).
  const content = (path: string) => contentHash(path, inputs.cacheDir)
  const hash = createHash('sha256')
  hash.update(`${FORMAT}\0`)
  hash.update(INIT_SCRIPT)
  hash.update(`\0bin/busybox ${content(busybox)}\0`)
  for (const library of libraries) hash.update(`${library} ${content(library)}\0`)
  const release = inputs.kernel.release ?? 'unknown'
  for (const module of order)
    hash.update(`boot ${release}/${module} ${content(join(inputs.kernel.modulesDir!, module))}\0`)
  for (const module of vsockOrder)
    hash.update(`vsock ${release}/${module} ${content(join(inputs.kernel.modulesDir!, module))}\0`)
  for (const module of diskOrder)
    hash.update(`disks ${release}/${module} ${content(join(inputs.kernel.modulesDir!, module))}\0`)
  hash.update(applets.map((a) => a.path).join(','))
  // Images of compressed modules changed (they go in decompressed); plain ones keep their keys.
  if ([...order, ...vsockOrder, ...diskOrder].some((m) => m !== plainModule(m)))
    hash.update('\0modules decompressed')
  const key = hash.digest('hex').slice(0, 20)

  const dir = join(inputs.cacheDir, 'initramfs')
  const path = initramfsPath(inputs.cacheDir, key)
  if (existsSync(path)) return { path, key, missingModules: missing, libraries }

  mkdirSync(dir, { recursive: true })
  removeStaleBuilds(dir)
  const started = performance.now()
  const partial = `${path}.${process.pid}.partial`
  try {
    const cpio = new CpioArchive(partial)
    for (const d of [
      'dev',
      'proc',
      'sys',
      'run',
      'tmp',
      'mnt',
      'newroot',
      'etc/vmctl',
      'root',
      'sbin',
      'usr/bin',
      'usr/sbin',
    ]) {
      cpio.parents(`${d}/x`)
      cpio.directory(d)
    }
    cpio.characterDevice('dev/console', 5, 1)
    cpio.characterDevice('dev/null', 1, 3, 0o666)
    cpio.file('init', Buffer.from(INIT_SCRIPT), 0o755)
    cpio.file('bin/busybox', readFileSync(busybox), 0o755)
    for (const applet of applets) {
      if (applet.path !== 'bin/busybox') cpio.symlink(applet.path, '/bin/busybox')
    }
    for (const library of libraries) cpio.file(library, readFileSync(library), 0o755)
    cpio.directory('vmctl')
    // Compressed modules (trixie's .ko.xz) go in decompressed: busybox's insmod may lack xz.
    for (const module of new Set([...order, ...vsockOrder, ...diskOrder])) {
      const bytes = await readModuleFile(join(inputs.kernel.modulesDir!, module))
      cpio.file(`lib/modules/${release}/${plainModule(module)}`, bytes)
    }
    const list = (modules: string[]) =>
      Buffer.from(`${modules.map((m) => `${release}/${plainModule(m)}`).join('\n')}\n`)
    cpio.file('etc/vmctl/modules', list(order))
    cpio.file('etc/vmctl/modules-vsock', list(vsockOrder))
    cpio.file('etc/vmctl/modules-disks', list(diskOrder))
    cpio.close()
    renameSync(partial, path)
  } catch (error) {
    rmSync(partial, { force: true })
    throw error
  }
  log(
    'built %s in %d ms (%d modules, missing %o)',
    path,
    Math.round(performance.now() - started),
    order.length,
    missing,
  )
  return { path, key, missingModules: missing, libraries }
}

async function busyboxApplets(busybox: string): Promise<Array<{ path: string }>> {
  const execa = await loadExeca()
  const result = await execa(busybox, ['--list-full'], { reject: false })
  if (result.exitCode !== 0) {
    return [
      'sh',
      'mount',
      'mkdir',
      'insmod',
      'modprobe',
      'ip',
      'hostname',
      'chroot',
      'sleep',
      'cat',
      'echo',
    ].map((a) => ({
      path: `bin/${a}`,
    }))
  }
  return result.stdout
    .split('\n')
    .filter(Boolean)
    .map((path) => ({ path }))
}

/** `kernel/fs/9p/9p.ko.xz` → `kernel/fs/9p/9p.ko`. */
function plainModule(path: string): string {
  return path.replace(/\.ko\.(xz|gz|zst)$/, '.ko')
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}
