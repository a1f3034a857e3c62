import { createHash } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { VmctlError } from '../errors.js'
import { lockIn, waitForLock } from '../host/cross-process-lock.js'
import { loadExeca } from '../host/lazy-execa.js'
import { which } from '../host/qemu-locator.js'
import { logger } from '../log.js'
import type { ImageBuildOptions } from '../vm/vm-options.js'
import { qemuImgBinary } from './image-file.js'
import { mmdebstrapArgs } from './mmdebstrap-args.js'

const log = logger('image-build')

export const DEFAULT_MIRROR = 'http://deb.debian.org/debian'
export const DEFAULT_DISK_GIB = 4
/** Bumped when the build recipe changes, so images built the old way are not reused. */
const RECIPE = 'vmctl-image-v2'

/** Where images and provisioning layers live: $cache/images/KEY/image.qcow2, $cache/layers/KEY.qcow2. */
export function imagesDir(cacheDir: string): string {
  return join(cacheDir, 'images')
}

export interface BuiltImage {
  path: string
  key: string
  /** False when this call built it. */
  cached: boolean
}

/** Progress lines while an image or layer is made (it takes minutes); the CLI and VM.up print them. */
export type Progress = (line: string) => void

export const stderrProgress: Progress = (line) => process.stderr.write(`vmctl: ${line}\n`)

/** The cache key: a hash of everything that goes into the image. */
export function imageKey(spec: ImageBuildOptions): string {
  const hash = createHash('sha256')
  hash.update(
    JSON.stringify([
      RECIPE,
      // mmdebstrap's whole command line (its hooks too), so a change to it is a new image.
      mmdebstrapArgs({
        distribution: spec.distribution,
        packages: [...new Set(spec.packages ?? [])].sort(),
        mirror: spec.mirror ?? DEFAULT_MIRROR,
        target: 'TARGET',
        mode: 'root', // either mode makes the same image
      }),
      spec.diskGiB ?? DEFAULT_DISK_GIB,
    ]),
  )
  return hash.digest('hex').slice(0, 20)
}

/**
 * Builds a bootable Debian root filesystem image from packages, or returns the cached one:
 * mmdebstrap (minbase + the packages, apt lists kept so provisioning can `apt-get install` without
 * an update) → `mkfs.ext4 -d` (a filesystem from a directory: no loop devices, no mounts) → qcow2.
 *
 * The image holds no kernel, bootloader or agent: vmctl boots it with its own kernel and initramfs
 * and hands the agent in on its runtime disk (docs/images.md says why), so an image does not go
 * stale when vmctl's agent changes. Made once across processes (a kernel-released lock); a failed
 * build leaves nothing behind.
 */
export async function buildImage(
  spec: ImageBuildOptions,
  cacheDir: string,
  progress: Progress = stderrProgress,
): Promise<BuiltImage> {
  const key = imageKey(spec)
  const dir = join(imagesDir(cacheDir), key)
  const path = join(dir, 'image.qcow2')
  if (existsSync(path)) {
    touch(join(dir, 'meta.json'))
    return { path, key, cached: true }
  }
  mkdirSync(imagesDir(cacheDir), { recursive: true })
  const release = await waitForLock(lockIn(imagesDir(cacheDir), `vmctl-image-${key}`), 500, () =>
    progress(`waiting for another process building image ${key}`),
  )
  try {
    if (existsSync(path)) return { path, key, cached: true }
    await build(spec, key, dir, progress)
    return { path, key, cached: false }
  } finally {
    release()
  }
}

async function build(spec: ImageBuildOptions, key: string, dir: string, progress: Progress): Promise<void> {
  const mmdebstrap = which('mmdebstrap', `${process.env.PATH ?? ''}:/usr/bin`)
  if (!mmdebstrap)
    throw new VmctlError(
      'MMDEBSTRAP_NOT_FOUND',
      'mmdebstrap was not found; vmctl builds images with it. Fix: sudo apt-get install mmdebstrap (or run scripts/setup.sh)',
    )
  const started = performance.now()
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`
  const staging = `${dir}.${process.pid}.staging`
  rmSync(staging, { recursive: true, force: true })
  mkdirSync(staging, { recursive: true })
  const root = join(staging, 'root')
  const raw = join(staging, 'root.ext4')
  const packages = [...new Set(spec.packages ?? [])].sort()
  const asRoot = process.getuid?.() === 0
  try {
    progress(
      `building image ${key}: Debian ${spec.distribution}${packages.length ? ` + ${packages.join(' ')}` : ''} (takes minutes; cached afterwards)`,
    )
    // As root: a plain directory. Otherwise: unshare mode into a tarball, unpacked under fakeroot
    // (which also runs mkfs.ext4 -d, so the filesystem records root as the files' owner).
    const target = asRoot ? root : join(staging, 'root.tar')
    const execa = await loadExeca()
    const command = execa(
      mmdebstrap,
      mmdebstrapArgs({
        distribution: spec.distribution,
        packages,
        mirror: spec.mirror ?? DEFAULT_MIRROR,
        target,
        mode: asRoot ? 'root' : 'unshare',
      }),
      { all: true, buffer: true, env: { LC_ALL: 'C' } },
    )
    let lastLines: string[] = []
    command.all?.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line.trim()) continue
        lastLines = [...lastLines, line].slice(-30)
        // mmdebstrap's own phase lines ("I: ...") are the progress worth showing; not its
        // "running --setup-hook in shell: sh -c '…'" ones (vmctl's hooks, mmdebstrap-args.ts).
        const phase = line.startsWith('I: ') && !line.startsWith('I: running --')
        if (phase || line.startsWith('E: ')) progress(`  [${elapsed()}] ${line.slice(3)}`)
      }
    })
    try {
      await command
    } catch (error) {
      throw new VmctlError(
        'IMAGE_BUILD_FAILED',
        `mmdebstrap failed building Debian ${spec.distribution} with ${packages.join(' ') || 'no extra packages'}. A misspelt package or suite, or an unreachable mirror (${spec.mirror ?? DEFAULT_MIRROR}), are the usual causes. Its last lines:\n${lastLines.join('\n')}`,
        { cause: error },
      )
    }
    writeFileSync(
      asRoot ? join(root, 'etc', 'vmctl-image.json') : join(staging, 'vmctl-image.json'),
      `${JSON.stringify({ key, ...spec, packages, builtAt: new Date().toISOString() })}\n`,
    )
    progress(`  [${elapsed()}] making the ext4 filesystem (mkfs.ext4 -d)`)
    const size = `${spec.diskGiB ?? DEFAULT_DISK_GIB}G`
    const mkfs = ['-q', '-F', '-t', 'ext4', '-L', 'vmctl-root', '-E', 'root_owner=0:0', '-d', root, raw, size]
    if (asRoot) {
      await execa(mkfsBinary(), mkfs)
    } else {
      await execa('fakeroot', [
        'sh',
        '-ec',
        'mkdir "$1" && tar -C "$1" -xpf "$2" && cp "$3" "$1/etc/vmctl-image.json" && shift 3 && "$@"',
        'sh',
        root,
        target,
        join(staging, 'vmctl-image.json'),
        mkfsBinary(),
        ...mkfs,
      ])
    }
    rmSync(root, { recursive: true, force: true })
    progress(`  [${elapsed()}] converting to qcow2`)
    await execa(qemuImgBinary(), ['convert', '-q', '-O', 'qcow2', raw, join(staging, 'image.qcow2')])
    rmSync(raw, { force: true })
    rmSync(join(staging, 'root.tar'), { force: true })
    writeFileSync(
      join(staging, 'meta.json'),
      `${JSON.stringify({ key, kind: 'image', ...spec, packages, builtAt: new Date().toISOString(), buildMs: Math.round(performance.now() - started) }, null, 2)}\n`,
    )
    rmSync(dir, { recursive: true, force: true })
    renameSync(staging, dir)
    const mib = statSync(join(dir, 'image.qcow2')).size / 2 ** 20
    progress(`built image ${key} in ${elapsed()} (${mib.toFixed(0)} MiB)`)
    log('built %s', dir)
  } catch (error) {
    rmSync(staging, { recursive: true, force: true })
    throw error
  }
}

/** Marks a cached entry as used (image ls shows when it last was). */
export function touch(metaFile: string): void {
  const now = new Date()
  try {
    utimesSync(metaFile, now, now)
  } catch {}
}

export function readMeta(dir: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'))
  } catch {
    return undefined
  }
}

function mkfsBinary(): string {
  for (const candidate of ['/usr/sbin/mkfs.ext4', '/sbin/mkfs.ext4'])
    if (existsSync(candidate)) return candidate
  return 'mkfs.ext4'
}
