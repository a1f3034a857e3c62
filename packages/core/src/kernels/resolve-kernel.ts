import { existsSync } from 'node:fs'
import { KernelNotFoundError } from '../errors.js'
import {
  type KernelSearch,
  locateKernel,
  type ResolvedKernel,
  resolveKernelPath,
} from '../host/kernel-locator.js'
import { which } from '../host/qemu-locator.js'
import { SETUP_COMMAND } from '../paths.js'
import { cachedBusyboxPath, type DefaultKernel, installedDefaultKernel } from './cached-fetches.js'
import { isKernelName, parseKernelName } from './kernel-name.js'
import type { CachedKernel } from './kernel-package.js'
import { installedNamedKernel } from './kernel-store.js'

// The public names (index.ts) stay here, beside the fetchers they go with.
export { type DefaultKernel, installedDefaultKernel } from './cached-fetches.js'

/**
 * The guest kernel for a VM: found by locateKernel's chain (option, VMCTL_KERNEL, cache, host /boot)
 * or, when none of them has one, Debian's default kernel fetched into the cache first, the way a
 * container library pulls an image on first use. An explicit kernel (option or VMCTL_KERNEL) that
 * does not work still fails at once: it is never replaced by a download.
 */
export async function resolveKernel(search: KernelSearch, cacheDir: string): Promise<ResolvedKernel> {
  const env = search.env ?? process.env
  // A name (`debian:trixie`), in the option or in VMCTL_KERNEL: fetched on first use, then cached.
  const named = search.explicit ?? env.VMCTL_KERNEL
  if (isKernelName(named)) {
    const name = parseKernelName(named)
    const { ensureNamedKernel } = await import('./named-kernel.js')
    const kernel = installedNamedKernel(cacheDir, name) ?? (await ensureNamedKernel(cacheDir, name, env))
    const resolved = resolveKernelPath(kernel.dir, name.text)
    if (!resolved) throw new KernelNotFoundError([`${name.text}: ${kernel.dir} (incomplete)`], SETUP_COMMAND)
    return resolved
  }
  try {
    const kernel = locateKernel(search)
    if (kernel.modulesDir) return kernel
    const { withCustomModules } = await import('./custom-modules.js')
    return withCustomModules(kernel, cacheDir, env)
  } catch (error) {
    if (!(error instanceof KernelNotFoundError) || search.explicit || env.VMCTL_KERNEL) throw error
  }
  await fetchDefaultKernel(cacheDir, env)
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
  // Loaded only now: the HTTP client and the xz decoder cost start-up time no cached run needs.
  const { ensureBusybox } = await import('./fetched-busybox.js')
  return ensureBusybox(cacheDir, env)
}

/**
 * busybox fetched into the cache (Debian's busybox-static) unless the host has one; for `vmctl
 * setup`. Resolves to the path used and whether it is the host's.
 */
export async function prepareBusybox(
  cacheDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ path: string; source: 'host' | 'cache' }> {
  const host = hostBusybox(env)
  if (host) return { path: host, source: 'host' }
  return { path: await resolveBusybox(cacheDir, env), source: 'cache' }
}

export function hostBusybox(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return which('busybox', `${env.PATH ?? ''}:/bin:/usr/bin`)
}

/**
 * The cache's default kernel, fetched from Debian's archive when the cache has none (what
 * `vmctl setup` and a VM.up() without a kernel do). See default-kernel.ts.
 */
export async function fetchDefaultKernel(
  cacheDir: string,
  env: NodeJS.ProcessEnv = process.env,
  say?: (line: string) => void,
): Promise<DefaultKernel> {
  const ready = installedDefaultKernel(cacheDir)
  if (ready) return ready
  const { ensureDefaultKernel } = await import('./default-kernel.js')
  return ensureDefaultKernel(cacheDir, env, say)
}

/**
 * The kernel a name (`debian:trixie`) stands for, fetched when the cache has none; with `refresh`,
 * looked up in the archive again (what `vmctl kernel fetch` does). See named-kernel.ts.
 */
export async function fetchNamedKernel(
  cacheDir: string,
  name: string,
  env: NodeJS.ProcessEnv = process.env,
  say?: (line: string) => void,
  options: { refresh?: boolean } = {},
): Promise<CachedKernel> {
  const parsed = parseKernelName(name)
  const { ensureNamedKernel } = await import('./named-kernel.js')
  return ensureNamedKernel(cacheDir, parsed, env, say, options)
}
