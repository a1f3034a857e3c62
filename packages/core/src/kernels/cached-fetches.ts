import { existsSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import type { CachedKernel } from './kernel-package.js'

/*
 * Where the fetched default kernel and busybox live in the cache. A leaf: resolve-kernel.ts reads it
 * to find them without loading the fetchers (default-kernel.ts, fetched-busybox.ts: HTTP and xz,
 * loaded only when something must be fetched), and the fetchers read it to know where to put them.
 */

/** Where a fetched busybox lives: one static binary, with the package version beside it. */
export function cachedBusyboxPath(cacheDir: string): string {
  return join(cacheDir, 'busybox', 'busybox')
}

/** The cache's default kernel: where it is, and whether this call fetched it. */
export type DefaultKernel = CachedKernel

/** The cache's default kernel when it is complete, else undefined. */
export function installedDefaultKernel(cacheDir: string): DefaultKernel | undefined {
  const kernels = join(cacheDir, 'kernels')
  try {
    const release = readlinkSync(join(kernels, 'default'))
    const dir = join(kernels, release)
    if (existsSync(join(dir, '.complete')) && existsSync(join(dir, 'vmlinux')))
      return { release, dir, fetched: false }
  } catch {}
  return undefined
}
