import { statfsSync } from 'node:fs'
import { basename, dirname } from 'node:path'
import { HostDiskFullError } from '../errors.js'

/** The fix for a full cache, wherever vmctl meets one (a download's error, a template's warning). */
export const CACHE_FIX = 'free space there, or set VMCTL_CACHE_DIR to a directory on a filesystem with room'

/**
 * Whether a failed write ran out of room: no space left on the device, or over the user's quota;
 * Node's own error, or a tool's (qemu-img) that said so on its stderr.
 */
export function isDiskFull(error: unknown): boolean {
  const failure = error as (NodeJS.ErrnoException & { stderr?: unknown }) | null | undefined
  if (failure?.code === 'ENOSPC' || failure?.code === 'EDQUOT') return true
  return (
    typeof failure?.stderr === 'string' && /No space left on device|Disk quota exceeded/.test(failure.stderr)
  )
}

/** A disk file made where the user asked (VmDisk.create) that found no room, as the error to act on. */
export function diskFileWriteError(error: unknown, file: string): unknown {
  if (!isDiskFull(error)) return error
  return new HostDiskFullError(
    dirname(file),
    file,
    'free space there, or make the disk on a filesystem with room',
    {
      cause: error,
    },
  )
}

/**
 * A write into a VM's directory that failed for room, as the error a user can act on: the runtime
 * directory to free space in, and where else to put it. Any other failure is returned unchanged.
 */
export function runtimeWriteError(error: unknown, vmDirectory: string, file: string): unknown {
  if (!isDiskFull(error)) return error
  const runtime = dirname(dirname(vmDirectory)) // <runtime>/vms/<name>
  return new HostDiskFullError(
    runtime,
    file,
    `free space there (\`vmctl gc\` removes what dead VMs left behind), or set VMCTL_RUNTIME_DIR to a directory on a filesystem with room`,
    { cause: error },
  )
}

/**
 * A write into vmctl's cache that failed for room (a kernel's download, say), as the error a user
 * can act on; any other failure is returned unchanged.
 */
export function cacheWriteError(error: unknown, file: string): unknown {
  if (!isDiskFull(error)) return error
  // A build writes into a hidden staging directory of its own, removed when it fails: name the
  // cache directory that holds it.
  let dir = dirname(file)
  while (basename(dir).startsWith('.') && dirname(dir) !== dir) dir = dirname(dir)
  return new HostDiskFullError(
    dir,
    file,
    `${CACHE_FIX} (a guest kernel takes 200-500 MB there once unpacked, a VM template ~200 MB)`,
    { cause: error },
  )
}

/**
 * MiB free for this user in the filesystem of `dir`, or of its nearest existing parent (the first
 * template makes the directory); undefined if it cannot be asked.
 */
export function freeMiB(dir: string): number | undefined {
  for (let at = dir; ; at = dirname(at)) {
    try {
      const stats = statfsSync(at)
      return Math.floor((stats.bavail * stats.bsize) / (1024 * 1024))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(at) === at) return undefined
    }
  }
}
