import { lstatSync, readlinkSync, realpathSync } from 'node:fs'
import { posix } from 'node:path'

/**
 * Resolves a guest path inside `root` the way the kernel would after chroot(root): absolute
 * symlinks restart at `root`, `..` never climbs above it. The agent itself runs outside the root
 * (in the initramfs), so without this an absolute symlink such as /etc/localtime would be followed
 * into the initramfs.
 */
export function resolveInRoot(root: string | undefined, path: string, followLast = true): string {
  if (!path.startsWith('/')) throw new Error(`guest paths must be absolute, got ${JSON.stringify(path)}`)
  if (!root) return posix.normalize(path)
  if (followLast) {
    const plain = withoutSymlinks(root, path)
    if (plain) return plain
  }
  const pending = path.split('/').filter(Boolean)
  const resolved: string[] = []
  let hops = 0
  while (pending.length > 0) {
    const part = pending.shift()!
    if (part === '.') continue
    if (part === '..') {
      resolved.pop()
      continue
    }
    const candidate = `${root}/${[...resolved, part].join('/')}`
    const isLast = pending.length === 0
    let target: string | undefined
    if (!isLast || followLast) {
      try {
        if (lstatSync(candidate).isSymbolicLink()) target = readlinkSync(candidate)
      } catch {}
    }
    if (target === undefined) {
      resolved.push(part)
      continue
    }
    if (++hops > 40) throw Object.assign(new Error(`too many symbolic links in ${path}`), { code: 'ELOOP' })
    if (target.startsWith('/')) resolved.length = 0
    pending.unshift(...target.split('/').filter(Boolean))
  }
  return `${root}/${resolved.join('/')}`
}

/**
 * `root + path` when no component of it is a symbolic link: then the kernel's realpath of it is
 * that very string (a component that is a link would be replaced by its target, which is not
 * itself), and resolving inside the root changes nothing. One realpath(3) in C, where the walk
 * below makes a JavaScript `Stats` object per component: 12% of the agent's time for a
 * `readFile('/etc/hostname')` under TCG (docs/call-lane-costs.md). Only for paths without `.` or
 * `..` (the walk takes those after the links before them, as a chroot does, where the kernel's
 * walk outside the root would follow an absolute link out of it) and without a trailing slash;
 * undefined for anything else, and for a path that does not exist: the walk decides those.
 */
const DOT_COMPONENT = /\/\.\.?(\/|$)/

function withoutSymlinks(root: string, path: string): string | undefined {
  if (DOT_COMPONENT.test(path) || path.endsWith('/')) return undefined
  const candidate = `${root}${path.includes('//') ? posix.normalize(path) : path}`
  try {
    return realpathSync.native(candidate) === candidate ? candidate : undefined
  } catch {
    return undefined
  }
}
