import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/**
 * Path of the vsock-bridge executable (native/vsock-bridge.c), or undefined when it was not built
 * (no C compiler at build time). The same static binary runs on the host and in the guest.
 */
export function vsockBridgePath(): string | undefined {
  return nativeHelperPath('vsock-bridge')
}

/**
 * Path of guest-setup (native/guest-setup.c), which mounts the guest's root filesystem and
 * refreshes VMs restored from snapshots; undefined when it was not built. VMs cannot boot without it.
 */
export function guestSetupPath(): string | undefined {
  return nativeHelperPath('guest-setup')
}

/** Path of vmctl-spawner (native/spawner.c), which starts the agent's commands; undefined when not built. */
export function spawnerPath(): string | undefined {
  return nativeHelperPath('vmctl-spawner')
}

/** The helpers that go on the guest's runtime disk, next to the agent (those that were built). */
export function guestHelperPaths(): string[] {
  return [vsockBridgePath(), guestSetupPath(), spawnerPath()].filter((p): p is string => p !== undefined)
}

function nativeHelperPath(name: string): string | undefined {
  const path = fileURLToPath(new URL(`../${name}`, import.meta.url))
  if (existsSync(path)) return path
  const built = path.replace(/\/src\/([^/]+)$/, '/dist/$1')
  return existsSync(built) ? built : undefined
}
