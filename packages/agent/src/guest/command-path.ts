import { statSync } from 'node:fs'
import { resolveInRoot } from './root-paths.js'

/**
 * Where a bare command name is in the root's PATH, as a path inside the root, or undefined.
 *
 * Why: busybox's nsenter, which runs commands in the root, runs its own applet for a bare name
 * that is one (it re-executes itself) instead of the root's binary: `exec(['ls', '--version'])`
 * ran busybox's ls. An absolute path is exec'd as it is. Symlinks are followed inside the root
 * (resolveInRoot), as the exec after the chroot will.
 */
export function findInRootPath(
  name: string,
  path: string,
  chrootPath: string | undefined,
): string | undefined {
  for (const dir of path.split(':')) {
    if (!dir.startsWith('/')) continue
    const candidate = `${dir.replace(/\/+$/, '')}/${name}`
    try {
      const entry = statSync(resolveInRoot(chrootPath, candidate))
      if (entry.isFile() && (entry.mode & 0o111) !== 0) return candidate
    } catch {}
  }
  return undefined
}
