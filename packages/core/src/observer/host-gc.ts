import { rmSync } from 'node:fs'
import { dirname } from 'node:path'
import { disksDir } from '../disks/disks-dir.js'
import { vmsDir } from '../paths.js'
import { prestartDirs } from '../supervisor/prestarted-qemu.js'
import { SupervisorClient } from '../supervisor/supervisor-client.js'
import { isAlive, VmDirectory } from '../supervisor/vm-directory.js'
import { pollUntil, sleep } from '../util/timing.js'
import { type Finding, type FindingKind, observeHost } from './host-observer.js'

export interface GcAction {
  finding: Finding
  /** What was done (or, with dryRun, would be). */
  action: string
  done: boolean
  error?: string
}

/** How long a supervisor gets to answer before it is taken for hung and killed. */
const SUPERVISOR_ANSWER_MS = 2_000
const EXIT_WAIT_MS = 5_000

/**
 * Repairs or removes what `observeHost()` finds, and says what it did. With `dryRun`, says what it
 * would do. Only things found out of place are touched: a healthy VM, a disk some VM has plugged
 * in, a template being made right now are left alone.
 */
export async function gcHost(
  options: { dryRun?: boolean; env?: NodeJS.ProcessEnv; kinds?: FindingKind[] } = {},
): Promise<GcAction[]> {
  const env = options.env ?? process.env
  const { findings } = observeHost(env)
  const actions: GcAction[] = []
  // A VM stopped unasked, or paused for a full disk, is the user's to deal with: reported by ps,
  // never repaired here.
  const repaired = findings.filter(
    (f) =>
      f.kind !== 'stopped-unexpectedly' &&
      f.kind !== 'paused-disk-full' &&
      (!options.kinds || options.kinds.includes(f.kind)),
  )
  for (const finding of repaired) {
    if (options.dryRun) {
      actions.push({ finding, action: finding.repair, done: false })
      continue
    }
    try {
      await repair(finding, env)
      actions.push({ finding, action: finding.repair, done: true })
    } catch (error) {
      actions.push({ finding, action: finding.repair, done: false, error: (error as Error).message })
    }
  }
  return actions
}

async function repair(finding: Finding, env: NodeJS.ProcessEnv): Promise<void> {
  switch (finding.kind) {
    case 'dead-supervisor':
    case 'template-staging':
      rmSync(finding.path!, { recursive: true, force: true })
      return
    case 'unreferenced-disk':
      rmSync(finding.path!, { force: true })
      removeDiskRecord(finding.path!, env)
      return
    case 'qemu-without-supervisor': {
      await killAndWait(finding.pid!)
      // A spare supervisor's QEMU (its sockets in a directory of their own) has no VM directory.
      if (finding.path && dirname(finding.path) === prestartDirs(dirname(vmsDir(env)))) {
        rmSync(finding.path, { recursive: true, force: true })
        return
      }
      const directory = new VmDirectory(finding.vm!, env)
      if (!isAlive(directory.readStatus()?.pid)) directory.remove()
      return
    }
    case 'supervisor-without-qemu': {
      // Asked first (it cleans up after itself); killed if it does not answer (stopped, hung).
      const directory = new VmDirectory(finding.vm!, env)
      const answered = await askToDestroy(directory)
      if (!answered) await killAndWait(finding.pid!)
      directory.remove()
      return
    }
    case 'missing-disk': {
      const client = await SupervisorClient.connect(new VmDirectory(finding.vm!, env).controlSocket)
      try {
        const reply = await client.request({ op: 'detach-disk', path: finding.path! })
        if (reply.ok !== true) throw new Error(String(reply.error))
      } finally {
        client.close()
      }
      removeDiskRecord(finding.path!, env)
      return
    }
  }
}

/** A disk file of vmctl's disks directory goes with its record (NAME.json beside NAME.qcow2). */
function removeDiskRecord(path: string, env: NodeJS.ProcessEnv): void {
  if (dirname(path) !== disksDir(env) || !/\.(qcow2|raw)$/.test(path)) return
  rmSync(path.replace(/\.(qcow2|raw)$/, '.json'), { force: true })
}

async function askToDestroy(directory: VmDirectory): Promise<boolean> {
  let client: SupervisorClient
  try {
    client = await SupervisorClient.connect(directory.controlSocket)
  } catch {
    return false
  }
  try {
    const reply = await Promise.race([
      client.request({ op: 'destroy' }),
      sleep(SUPERVISOR_ANSWER_MS).then(() => undefined),
    ])
    return reply?.ok === true
  } finally {
    client.close()
  }
}

async function killAndWait(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {}
  const gone = await pollUntil(() => !isAlive(pid), { timeoutMs: EXIT_WAIT_MS, everyMs: 20 })
  if (!gone) throw new Error(`pid ${pid} did not exit within ${EXIT_WAIT_MS} ms of SIGKILL`)
}
