import { lstatSync, readlinkSync } from 'node:fs'
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
