import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { listNetworks } from '../network/network-directory.js'
import { isSameProcess } from '../supervisor/process-start.js'
import { isStale, listVms, VmDirectory } from '../supervisor/vm-directory.js'

/** A test run's runtime directory: `<base>/vmctl-run-XXXXXX` (vitest.global-setup.ts). */
const PREFIX = 'vmctl-run-'
/** Who made the directory: the pid of the run's vitest and when it wrote this. */
const OWNER_FILE = 'owner.json'
/** A directory with no owner file is older code's (or one being made): left alone while this young. */
const UNOWNED_GRACE_MS = 10 * 60_000

/** Makes this run's runtime directory under `base`, with its owner (this process) recorded in it. */
export function claimRunDir(base: string): string {
  const dir = mkdtempSync(join(base, PREFIX))
  writeFileSync(
    join(dir, OWNER_FILE),
    JSON.stringify({ pid: process.pid, writtenAt: new Date().toISOString() }),
  )
  return dir
}

/**
 * Removes the runtime directories under `base` that a killed run left behind; returns them. A
 * directory is dead when the process that made it is gone (its pid not running, or running a later
 * process that got the pid), and no process on this host has it as its VMCTL_RUNTIME_DIR (a
 * supervisor or QEMU of that run still going: not ours to pull the floor from under). Another run
 * side by side is alive by both counts and never touched.
 */
export function sweepDeadRunDirs(base: string, now = Date.now()): string[] {
  const swept: string[] = []
  let inUse: Set<string> | undefined
  for (const name of readdirSync(base)) {
    if (!name.startsWith(PREFIX)) continue
    const dir = join(base, name)
    if (!ownerGone(dir, now)) continue
    inUse ??= runtimeDirsInUse()
    if (inUse.has(dir) || holdsLiveVmOrNetwork(dir)) continue
    try {
      rmSync(dir, { recursive: true, force: true })
      swept.push(dir)
    } catch {}
  }
  return swept
}

function holdsLiveVmOrNetwork(dir: string): boolean {
  const env = { VMCTL_RUNTIME_DIR: dir }
  try {
    if (listVms(env).length > 0 || listNetworks(env).length > 0) return true
    const vms = join(dir, 'vms')
    return readdirSync(vms).some((name) => !isStale(new VmDirectory(name, env)))
  } catch {
    return true // unreadable or not private: not ours to judge, so not ours to remove
  }
}

function ownerGone(dir: string, now: number): boolean {
  let owner: { pid?: number; writtenAt?: string }
  try {
    owner = JSON.parse(readFileSync(join(dir, OWNER_FILE), 'utf8'))
  } catch {
    try {
      return now - statSync(dir).mtimeMs > UNOWNED_GRACE_MS
    } catch {
      return false
    }
  }
  return !(isAlive(owner.pid) && isSameProcess(owner.pid, owner.writtenAt))
}

function isAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Every VMCTL_RUNTIME_DIR in the environment of a running process this user may read: a run's
 * workers, vmctl CLIs, supervisors and QEMUs inherit it (a supervisor that outlived its run too).
 */
function runtimeDirsInUse(): Set<string> {
  const dirs = new Set<string>()
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    try {
      const match = readFileSync(`/proc/${pid}/environ`, 'utf8').match(/(?:^|\0)VMCTL_RUNTIME_DIR=([^\0]*)/)
      if (match) dirs.add(match[1]!)
    } catch {}
  }
  return dirs
}
