import { execFileSync } from 'node:child_process'
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs'

/**
 * Small tmpfs filesystems mounted for a test of a full disk, and unmounted by `unmountAll`. Mounting
 * needs root: such tests skip themselves otherwise (CI runs as root).
 */
export const canMount = process.getuid?.() === 0

const mounted: string[] = []

/** Mounts a `sizeMiB` tmpfs on `dir` (made if missing), only this user may enter. */
export function mountTmpfs(dir: string, sizeMiB: number): void {
  mkdirSync(dir, { recursive: true })
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0700`, 'tmpfs', dir])
  mounted.push(dir)
}

/** Unmounts every filesystem mountTmpfs mounted (lazily: a QEMU may still hold a file there). */
export function unmountAll(): void {
  for (const dir of mounted.splice(0).reverse()) execFileSync('umount', ['-l', dir])
}

/** Writes zeros into `file` until its filesystem is full, or `limitMiB`; returns how many MiB went in. */
export function fillUp(file: string, limitMiB = Number.POSITIVE_INFINITY): number {
  const fd = openSync(file, 'w')
  const chunk = Buffer.alloc(1024 * 1024)
  let written = 0
  try {
    while (written < limitMiB * 1024 * 1024) written += writeSync(fd, chunk)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error
  } finally {
    closeSync(fd)
  }
  return Math.floor(written / (1024 * 1024))
}
