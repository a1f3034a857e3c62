import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { KernelNotFoundError } from '../errors.js'
import { type KernelSearch, locateKernel, type ResolvedKernel } from '../host/kernel-locator.js'
import { which } from '../host/qemu-locator.js'

/**
 * The guest kernel for a VM: found by locateKernel's chain (option, VMCTL_KERNEL, cache, host /boot)
 * or, when none of them has one, Debian's default kernel fetched into the cache first, the way a
 * container library pulls an image on first use. An explicit kernel (option or VMCTL_KERNEL) that
 * does not work still fails at once: it is never replaced by a download.
 */
export async function resolveKernel(search: KernelSearch, cacheDir: string): Promise<ResolvedKernel> {
  const env = search.env ?? process.env
  try {
    return locateKernel(search)
  } catch (error) {
    if (!(error instanceof KernelNotFoundError) || search.explicit || env.VMCTL_KERNEL) throw error
  }
  // Loaded only now: the HTTP client and the xz decoder cost start-up time no cached run needs.
  const { ensureDefaultKernel } = await import('./default-kernel.js')
  await ensureDefaultKernel(cacheDir, env)
  return locateKernel(search)
}

/**
 * busybox for the guest init: the host's (on PATH, /bin, /usr/bin), else the one fetched into the
 * cache, fetched now when there is none. The host's comes first so that a host with everything
 * installed never needs the network and its existing caches stay valid.
 */
export async function resolveBusybox(
  cacheDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const host = hostBusybox(env)
  if (host) return host
  const cached = cachedBusyboxPath(cacheDir)
  if (existsSync(cached)) return cached
  const { ensureBusybox } = await import('./fetched-busybox.js')
  return ensureBusybox(cacheDir, env)
}

export function hostBusybox(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return which('busybox', `${env.PATH ?? ''}:/bin:/usr/bin`)
}

/** Where a fetched busybox lives: one static binary, with the package version beside it. */
export function cachedBusyboxPath(cacheDir: string): string {
  return join(cacheDir, 'busybox', 'busybox')
}
