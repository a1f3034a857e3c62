import { createHash } from 'node:crypto'
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'

/**
 * sha256 (hex) of a file's content, for cache keys that must mean the same on every host: a cache
 * made on one CI runner and restored on another (another $HOME, other inodes and mtimes) keeps
 * its keys, where a key of path, size and mtime would change and rebuild everything.
 *
 * Hashing is paid once per file per host, not per VM.up(): the result is remembered in this
 * process and on disk in `$cache/hashes/`, one small file per path, valid while the file's size,
 * mtime, ctime, inode and device are unchanged (ctime cannot be set back by hand, so a rewrite that
 * restores the mtime still shows). On another host the memo misses (other inodes) and the file is
 * hashed once there: 99 MB of node takes about half a second.
 */
export function contentHash(path: string, cacheDir: string): string {
  const stat = statSync(path)
  const identity = `${path}\0${stat.size}\0${stat.mtimeMs}\0${stat.ctimeMs}\0${stat.ino}\0${stat.dev}`
  const known = inThisProcess.get(identity)
  if (known) return known
  const memo = join(cacheDir, 'hashes', createHash('sha256').update(path).digest('hex').slice(0, 32))
  try {
    const entry = JSON.parse(readFileSync(memo, 'utf8')) as { identity: string; sha256: string }
    if (entry.identity === identity && /^[0-9a-f]{64}$/.test(entry.sha256)) {
      inThisProcess.set(identity, entry.sha256)
      return entry.sha256
    }
  } catch {}
  const sha256 = hashFile(path)
  inThisProcess.set(identity, sha256)
  try {
    mkdirSync(join(cacheDir, 'hashes'), { recursive: true })
    writeFileSync(`${memo}.${process.pid}`, JSON.stringify({ identity, sha256 }))
    renameSync(`${memo}.${process.pid}`, memo)
  } catch {}
  return sha256
}

const inThisProcess = new Map<string, string>()

function hashFile(path: string): string {
  const hash = createHash('sha256')
  const buffer = Buffer.allocUnsafe(1 << 20)
  const fd = openSync(path, 'r')
  try {
    for (let read = readSync(fd, buffer); read > 0; read = readSync(fd, buffer))
      hash.update(buffer.subarray(0, read))
  } finally {
    closeSync(fd)
  }
  return hash.digest('hex')
}
