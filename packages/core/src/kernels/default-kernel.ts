import { readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { installedDefaultKernel } from './cached-fetches.js'
import { parseKernelName } from './kernel-name.js'
import type { CachedKernel } from './kernel-package.js'
import type { Say } from './kernel-store.js'
import { ensureNamedKernel } from './named-kernel.js'

export type { KernelFetchPhases } from './kernel-package.js'

/**
 * The default kernel is `debian:bookworm`: Debian 12's generic amd64 kernel, the package
 * `linux-image-amd64` depends on in bookworm-security, else bookworm (what apt on a Debian 12 host
 * installs). Generic, not -cloud-: kernel mode shares the host root over virtio-9p, which the cloud
 * kernel lacks; its virtio, 9p, overlay and vsock drivers are modules vmctl's initramfs loads. It
 * is the kernel vmctl's boot recipe is measured on.
 */
export const DEFAULT_KERNEL_NAME = 'debian:bookworm'

/**
 * Makes sure the cache has the default kernel, fetching it when it has none, laid out as
 *   $CACHE/kernels/<release>/{vmlinuz,vmlinux,config,release,.complete,lib/modules/<release>/...}
 *   $CACHE/kernels/default -> <release>
 * See named-kernel.ts and kernel-package.ts for the fetch (one lock; a failed or killed fetch
 * leaves nothing a later run would trust).
 */
export async function ensureDefaultKernel(
  cacheDir: string,
  env: NodeJS.ProcessEnv = process.env,
  say: Say = (line) => process.stderr.write(`vmctl: ${line}\n`),
): Promise<CachedKernel> {
  const ready = installedDefaultKernel(cacheDir)
  if (ready) return ready
  const kernel = await ensureNamedKernel(cacheDir, parseKernelName(DEFAULT_KERNEL_NAME), env, say)
  linkDefault(join(cacheDir, 'kernels'), kernel.release)
  return kernel
}

/** `default -> <release>`, replaced atomically (unless it already points there). */
function linkDefault(kernels: string, release: string): void {
  try {
    if (readlinkSync(join(kernels, 'default')) === release) return
  } catch {}
  const temporary = join(kernels, `.default-${process.pid}`)
  rmSync(temporary, { force: true })
  symlinkSync(release, temporary)
  renameSync(temporary, join(kernels, 'default'))
}
