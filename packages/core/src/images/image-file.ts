import { execFileSync } from 'node:child_process'
import { statSync } from 'node:fs'
import { dirname, relative } from 'node:path'
import { VmctlError } from '../errors.js'
import { loadExeca } from '../host/lazy-execa.js'
import { which } from '../host/qemu-locator.js'
import { diskSignature } from './disk-signature.js'

/** A disk image vmctl cannot use: names the image, what is wrong and what to do. */
export class ImageError extends VmctlError {
  readonly image: string
  readonly exitCode: number
  constructor(image: string, message: string, options?: { cause?: unknown }) {
    super('IMAGE_INVALID', message, options)
    // Bad input: the CLI exits with 2, as for any usage error.
    this.exitCode = 2
    this.image = image
  }
}

export interface ImageInfo {
  path: string
  format: 'qcow2' | 'raw'
  virtualSize: number
}

export function qemuImgBinary(env: NodeJS.ProcessEnv = process.env): string {
  const found = which('qemu-img', `${env.PATH ?? ''}:/usr/bin:/usr/local/bin`)
  if (!found)
    throw new VmctlError(
      'QEMU_IMG_NOT_FOUND',
      'qemu-img was not found; image mode needs it for overlays. Fix: sudo apt-get install qemu-utils',
    )
  return found
}

/**
 * What QEMU makes of an image file, or an ImageError saying why it cannot be booted. qemu-img
 * reads the header (and checks a qcow2's tables), so a corrupt or truncated image fails here, in
 * the caller's process, instead of as an I/O error deep in a booting guest.
 */
export function inspectImage(path: string): ImageInfo {
  let size: number
  let identity: string
  try {
    const stat = statSync(path)
    if (!stat.isFile()) throw new Error('not a regular file')
    size = stat.size
    identity = [path, stat.dev, stat.ino, size, stat.mtimeMs, stat.ctimeMs].join('\0')
  } catch (error) {
    throw new ImageError(
      path,
      `the disk image ${path} cannot be used (${(error as Error).message}). Fix: point image at an existing qcow2 or raw disk image`,
    )
  }
  const known = inspected.get(identity)
  if (known) return known
  let info: { format?: string; 'virtual-size'?: number; 'backing-filename'?: string }
  try {
    const out = execFileSync(qemuImgBinary(), ['info', '--output=json', path], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    info = JSON.parse(out)
  } catch (error) {
    const detail = ((error as { stderr?: string }).stderr ?? (error as Error).message).trim()
    throw new ImageError(
      path,
      `the disk image ${path} is corrupt or not a disk image (qemu-img: ${detail}). Fix: rebuild or re-download it; \`qemu-img check ${path}\` shows what is wrong`,
      { cause: error },
    )
  }
  if (info.format !== 'qcow2' && info.format !== 'raw')
    throw new ImageError(
      path,
      `the disk image ${path} is in ${info.format} format; vmctl boots qcow2 and raw. Fix: qemu-img convert -O qcow2 ${path} image.qcow2`,
    )
  if (info.format === 'raw' && size < 64 * 1024)
    throw new ImageError(
      path,
      `the disk image ${path} is ${size} bytes, too small to hold a root filesystem. Fix: point image at a real disk image`,
    )
  if (info.format === 'raw' && !diskSignature(path))
    throw new ImageError(
      path,
      `${path} is not a disk image: it is neither qcow2 nor a raw disk with a partition table or a filesystem (ext4, XFS, btrfs, ...). Fix: point image at a qcow2 or raw disk image (a cloud image, or one vmctl builds: image: { distribution: 'bookworm' })`,
    )
  const checked: ImageInfo = { path, format: info.format, virtualSize: info['virtual-size'] ?? size }
  inspected.set(identity, checked)
  return checked
}

/**
 * Images this process has checked, by path and file identity: a warm VM.up() of an image (and of
 * its provisioned layer) asks again for every VM, and a qemu-img run blocks the event loop for
 * tens of milliseconds (hundreds on a busy host). A file rewritten since (other size, mtime, ctime
 * or inode) is checked again; failures are never remembered.
 */
const inspected = new Map<string, ImageInfo>()

/**
 * A new qcow2 file whose unwritten clusters read from `backing`, which QEMU opens read-only. When
 * both are in the cache (a provisioning layer on a built image) the overlay names its backing file
 * relative to itself, so the cache still opens when it is restored elsewhere (another $HOME).
 */
export async function createOverlay(backing: ImageInfo, overlay: string, cacheDir?: string): Promise<void> {
  const inCache = (path: string) => cacheDir !== undefined && !relative(cacheDir, path).startsWith('..')
  const backingName =
    inCache(backing.path) && inCache(overlay) ? relative(dirname(overlay), backing.path) : backing.path
  const execa = await loadExeca()
  await execa(qemuImgBinary(), [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-F',
    backing.format,
    '-b',
    backingName,
    overlay,
  ])
}
