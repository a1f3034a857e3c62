import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** The guest's agent listens on this vsock port (any port above 1023 would do). */
export const AGENT_VSOCK_PORT = 7000

/**
 * Path of the vsock-bridge executable (native/vsock-bridge.c), or undefined when it was not built
 * (no C compiler at build time). The same static binary runs on the host and in the guest.
 */
export function vsockBridgePath(): string | undefined {
  return nativeHelperPath('vsock-bridge')
}

/** Path of clone-refresh (native/clone-refresh.c), or undefined when it was not built. */
export function cloneRefreshPath(): string | undefined {
  return nativeHelperPath('clone-refresh')
}

function nativeHelperPath(name: string): string | undefined {
  const path = fileURLToPath(new URL(`../${name}`, import.meta.url))
  if (existsSync(path)) return path
  const built = path.replace(/\/src\/([^/]+)$/, '/dist/$1')
  return existsSync(built) ? built : undefined
}
