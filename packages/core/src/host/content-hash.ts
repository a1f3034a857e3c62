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
  const identity = identityOf(path)
  const known = inThisProcess.get(identity)
  if (known) return known
  const memo = memoPath(cacheDir, path)
  const remembered = readMemo(memo, identity)?.sha256
  if (typeof remembered === 'string' && /^[0-9a-f]{64}$/.test(remembered)) {
    inThisProcess.set(identity, remembered)
    return remembered
  }
  const sha256 = hashFile(path)
  inThisProcess.set(identity, sha256)
  writeMemo(cacheDir, memo, { identity, sha256 })
  return sha256
}

/**
 * A key that `compute` makes from the content of `paths` (and constants of the caller's code, which
 * `name` must change with), remembered as contentHash remembers a hash: in this process and in
 * `$cache/hashes/`, valid while every one of the files keeps its size, mtime, ctime, inode and
 * device. Files that change while `compute` reads them leave nothing remembered.
 */
export function keyOfFiles(name: string, paths: string[], cacheDir: string, compute: () => string): string {
  const identity = [name, ...paths.map(identityOf)].join('\0\0')
  const known = inThisProcess.get(identity)
  if (known) return known
  const memo = memoPath(cacheDir, `${name}\0${paths.join('\0')}`)
  const remembered = readMemo(memo, identity)?.key
  if (typeof remembered === 'string' && remembered !== '') {
    inThisProcess.set(identity, remembered)
    return remembered
  }
  const key = compute()
  if ([name, ...paths.map(identityOf)].join('\0\0') !== identity) return key
  inThisProcess.set(identity, key)
  writeMemo(cacheDir, memo, { identity, key })
  return key
}

/** What a memo holds for: the file's path, size, mtime, ctime, inode and device. */
function identityOf(path: string): string {
  const stat = statSync(path)
  return `${path}\0${stat.size}\0${stat.mtimeMs}\0${stat.ctimeMs}\0${stat.ino}\0${stat.dev}`
}

function memoPath(cacheDir: string, of: string): string {
  return join(cacheDir, 'hashes', createHash('sha256').update(of).digest('hex').slice(0, 32))
}

/** The memo's fields when it was written for `identity`. */
function readMemo(memo: string, identity: string): Record<string, unknown> | undefined {
  try {
    const entry = JSON.parse(readFileSync(memo, 'utf8')) as Record<string, unknown>
    return entry.identity === identity ? entry : undefined
  } catch {
    return undefined
  }
}

function writeMemo(cacheDir: string, memo: string, entry: Record<string, string>): void {
  try {
    mkdirSync(join(cacheDir, 'hashes'), { recursive: true })
    writeFileSync(`${memo}.${process.pid}`, JSON.stringify(entry))
    renameSync(`${memo}.${process.pid}`, memo)
  } catch {}
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
