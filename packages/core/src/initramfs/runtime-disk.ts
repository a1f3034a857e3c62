import { createHash } from 'node:crypto'
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import { agentBundlePath, buildAgentExecutable, guestHelperPaths } from '@vmctl/agent'
import { tryLock } from '../host/cross-process-lock.js'
import { loadExeca } from '../host/lazy-execa.js'
import { removeStaleBuilds } from '../host/stale-builds.js'
import { logger } from '../log.js'

const log = logger('runtime-disk')

/** The virtio-blk serial the init looks for to find the runtime disk among other disks. */
export const RUNTIME_DISK_SERIAL = 'vmctl-runtime'

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
  const agent = agentBundlePath()
  const node = statSync(nodeBinary)
  const hash = createHash('sha256')
  const helpers = guestHelperPaths()
  hash.update('vmctl-runtime-disk-v5\0')
  hash.update(`${nodeBinary}:${node.size}:${node.mtimeMs}\0`)
  hash.update(readFileSync(agent))
  for (const helper of helpers) hash.update(readFileSync(helper))
  const key = hash.digest('hex').slice(0, 20)
  const dir = join(cacheDir, 'runtime')
  const path = join(dir, `${key}.ext4`)
  if (existsSync(path)) return { path, key }

  // Test workers starting on an empty cache would each spend seconds of CPU on the same build:
  // one builds (under a lock the kernel drops if it dies), the others wait for its result.
  for (;;) {
    const release = await tryLock(`vmctl-runtime-disk-${key}`)
    if (release) {
      try {
        if (!existsSync(path)) await buildInto(nodeBinary, dir, path, key)
      } finally {
        release()
      }
      return { path, key }
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
    if (existsSync(path)) return { path, key }
  }
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
    const executable = join(staging, 'vmctl-agent')
    await buildAgentExecutable(nodeBinary, executable)
    // The native helpers (static, so they need nothing from the guest): vsock, refresh, root mount.
    for (const helper of helpers) copyFileSync(helper, join(staging, basename(helper)))
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
