import { mkdirSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { privateEntries, vmsDir } from '../paths.js'
import type { AttachedDisk } from '../supervisor/disk-hotplug.js'
import { isAlias, isAlive, VmDirectory } from '../supervisor/vm-directory.js'

/**
 * Disks that `VmDisk.create()` makes without a path, and `vmctl disk create`: user data, so under
 * $XDG_DATA_HOME (not the cache, which may be wiped; not the runtime directory, which is RAM).
 */
export function disksDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir =
    env.VMCTL_DISKS_DIR || join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'vmctl', 'disks')
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  return dir
}

/** What vmctl knows of a disk it made in disksDir: `NAME.json` next to `NAME.qcow2` or `NAME.raw`. */
export interface DiskManifest {
  name: string
  file: string
  format: 'qcow2' | 'raw'
  sizeMiB: number
  createdAt: string
  /** The process that made it; a non-persistent disk goes with it (or with `vmctl gc`). */
  creatorPid: number
  persistent: boolean
}

export function readManifest(path: string): DiskManifest | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as DiskManifest
  } catch {
    return undefined
  }
}

/** Each running VM's plugged disks, from the supervisors' disks.json (the VM's name → disks). */
export function attachedDisks(env: NodeJS.ProcessEnv = process.env): Map<string, AttachedDisk[]> {
  const byVm = new Map<string, AttachedDisk[]>()
  for (const name of privateEntries(vmsDir(env))) {
    if (isAlias(vmsDir(env), name)) continue
    const directory = new VmDirectory(name, env)
    if (!isAlive(directory.readStatus()?.pid)) continue
    try {
      byVm.set(name, JSON.parse(readFileSync(directory.disksFile, 'utf8')) as AttachedDisk[])
    } catch {}
  }
  return byVm
}

/** The VMs (names) that have `path` plugged in, with how. */
export function vmsUsingDisk(
  path: string,
  env: NodeJS.ProcessEnv = process.env,
): { vm: string; readOnly: boolean }[] {
  const users: { vm: string; readOnly: boolean }[] = []
  for (const [vm, disks] of attachedDisks(env))
    for (const disk of disks) if (disk.path === path) users.push({ vm, readOnly: disk.readOnly })
  return users
}
