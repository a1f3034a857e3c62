import { createHash } from 'node:crypto'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs'
import { basename, join } from 'node:path'
import { agentBundlePath, buildAgentExecutable, guestHelperPaths } from '@vmctl/agent'
import { contentHash, keyOfFiles } from '../host/content-hash.js'
import { lockIn, tryLock } from '../host/cross-process-lock.js'
import { loadExeca } from '../host/lazy-execa.js'
import { removeStaleBuilds } from '../host/stale-builds.js'
import { logger } from '../log.js'
import { pollUntil } from '../util/timing.js'

const log = logger('runtime-disk')

/** The virtio-blk serial the init looks for to find the runtime disk among other disks. */
export const RUNTIME_DISK_SERIAL = 'vmctl-runtime'

/**
 * Bumped whenever what goes on the disk, or how, changes (v6: modes set here, keys of content).
 * Part of the key, so a disk made the old way is never reused.
 */
const FORMAT = 'vmctl-runtime-disk-v6'

/**
 * The mode of every file on the disk. Set here, not taken from the package: `pnpm pack` drops the
 * execute bit of dist/guest-setup and dist/vsock-bridge (npm pack keeps it), and a guest whose
 * helpers cannot run never boots. Part of the key too.
 */
const EXECUTABLE_MODE = 0o755

export interface RuntimeDisk {
  path: string
  key: string
}

/**
 * A small read-only ext4 image holding the agent as one executable (node's single executable
 * applications: node and the bundle in one file, see @vmctl/agent) and vsock-bridge, attached as a
 * virtio-blk disk.
 *
 * Measured under TCG: with node (99 MB) inside the initramfs the kernel spent ~3 s unpacking it
 * before init ran; from a disk, node's pages are read on demand. A disk (unlike a 9p or virtiofs
 * share) does not block migration, so the agent can run, and be snapshotted, before any host share
 * is mounted. ext4 without journal or metadata checksums needs no crc32c module in the guest.
 */
export async function buildRuntimeDisk(nodeBinary: string, cacheDir: string): Promise<RuntimeDisk> {
  const key = runtimeDiskKey(nodeBinary, cacheDir)
  const dir = join(cacheDir, 'runtime')
  const path = join(dir, `${key}.ext4`)
  if (existsSync(path)) return { path, key }

  // Test workers starting on an empty cache would each spend seconds of CPU on the same build:
  // one builds (under a lock the kernel drops if it dies), the others wait for its result.
  // No time limit: the builder's death releases the lock, and then one of the waiters builds.
  const release = await pollUntil(
    async () => (existsSync(path) ? 'built' : await tryLock(lockIn(dir, `vmctl-runtime-disk-${key}`))),
    { timeoutMs: Number.POSITIVE_INFINITY, everyMs: 100 },
  )
  if (typeof release === 'function') {
    try {
      if (!existsSync(path)) await buildInto(nodeBinary, dir, path, key)
    } finally {
      release()
    }
  }
  return { path, key }
}

/**
 * A hash of everything that goes on the disk, and nothing of the host it is made on (no paths, no
 * mtimes): the format, the node binary's content (the agent executable is made from it), the
 * agent bundle, and each helper's name, mode and content. The same inputs give the same key on any
 * host, so a cache restored on another CI runner is used there.
 */
export function runtimeDiskKey(nodeBinary: string, cacheDir: string): string {
  // Hashing the ~3 MB of the agent and its helpers took 30-40 ms of CPU on every VM.up() (on the
  // `vmctl run` path before the supervisor gets its VM): remembered while none of them changes.
  const agent = agentBundlePath()
  const helpers = guestHelperPaths()
  return keyOfFiles(`${FORMAT} ${EXECUTABLE_MODE}`, [nodeBinary, agent, ...helpers], cacheDir, () => {
    const hash = createHash('sha256')
    hash.update(`${FORMAT}\0`)
    hash.update(`vmctl-agent ${EXECUTABLE_MODE.toString(8)} ${contentHash(nodeBinary, cacheDir)}\0`)
    hash.update(readFileSync(agent))
    for (const helper of helpers) {
      hash.update(`\0${basename(helper)} ${EXECUTABLE_MODE.toString(8)}\0`)
      hash.update(readFileSync(helper))
    }
    return hash.digest('hex').slice(0, 20)
  })
}

async function buildInto(nodeBinary: string, dir: string, path: string, key: string): Promise<void> {
  const helpers = guestHelperPaths()
  mkdirSync(dir, { recursive: true })
  removeStaleBuilds(dir)
  const started = performance.now()
  const staging = join(dir, `${key}.${process.pid}.staging`)
  const partial = `${path}.${process.pid}.partial`
  try {
    rmSync(staging, { recursive: true, force: true })
    mkdirSync(staging)
    chmodSync(staging, EXECUTABLE_MODE) // the disk's root: whatever the umask
    const executable = join(staging, 'vmctl-agent')
    await buildAgentExecutable(nodeBinary, executable)
    chmodSync(executable, EXECUTABLE_MODE)
    // The native helpers (static, so they need nothing from the guest): vsock, refresh, root mount.
    for (const helper of helpers) {
      const copy = join(staging, basename(helper))
      copyFileSync(helper, copy)
      chmodSync(copy, EXECUTABLE_MODE)
    }
    const bytes = statSync(executable).size
    const sizeMiB = Math.ceil((bytes * 1.08) / 2 ** 20) + 8
    const execa = await loadExeca()
    await execa(mkfsBinary(), [
      '-q',
      '-F',
      '-t',
      'ext4',
      '-O',
      '^has_journal,^metadata_csum,^64bit,^resize_inode',
      '-m',
      '0',
      '-L',
      'vmctl-rt',
      '-E',
      'root_owner=0:0',
      '-d',
      staging,
      partial,
      `${sizeMiB}M`,
    ])
    renameSync(partial, path)
  } catch (error) {
    rmSync(partial, { force: true })
    const message = (error as { stderr?: string }).stderr || (error as Error).message
    throw new Error(
      `cannot build the agent runtime disk (the agent executable, then mkfs.ext4 from e2fsprogs): ${message}`,
      {
        cause: error,
      },
    )
  } finally {
    rmSync(staging, { recursive: true, force: true })
  }
  log('built %s in %d ms', path, Math.round(performance.now() - started))
}

function mkfsBinary(): string {
  for (const candidate of ['/usr/sbin/mkfs.ext4', '/sbin/mkfs.ext4'])
    if (existsSync(candidate)) return candidate
  return 'mkfs.ext4'
}
