import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { VmctlError } from '../errors.js'
import { SupervisorClient } from '../supervisor/supervisor-client.js'
import { isAlive, type VmDirectory } from '../supervisor/vm-directory.js'
import { pollUntil } from '../util/timing.js'
import { supervisorEnv, supervisorMainPath } from './supervisor-entry.js'

/**
 * Starts the supervisor of the VM in `directory` (its launch.json written): a detached process,
 * by file path (supervisor-main.ts). Its stdin carries the early QEMU's plan (early-qemu.ts),
 * written by the caller. Throws when it cannot be spawned (not built, the log not writable).
 */
export function spawnSupervisor(directory: VmDirectory): ChildProcess {
  const main = supervisorMainPath()
  const logFd = openSync(directory.supervisorLog, 'a', 0o600)
  const supervisor = spawn(process.execPath, [main, directory.path], {
    detached: true,
    stdio: ['pipe', logFd, logFd],
    env: supervisorEnv(),
  })
  closeSync(logFd)
  return supervisor
}

/** The supervisor's control socket, once it listens; fails with its log's tail if it never does. */
export async function connectControl(
  directory: VmDirectory,
  pid: number | undefined,
): Promise<SupervisorClient> {
  // A node process's start: well under a second on a quiet host, but a minute is not unheard of
  // inside a TCG guest (vmctl in a VM) or on a host running many VMs.
  const control = await pollUntil(() => SupervisorClient.connect(directory.controlSocket), {
    timeoutMs: 60_000,
    everyMs: 15,
    stopIf: () => !isAlive(pid),
  })
  if (control) return control
  const what = isAlive(pid) ? 'did not start' : 'exited during start-up'
  const logged = logTail(directory.supervisorLog) || '(no supervisor log)'
  throw new VmctlError('SUPERVISOR_FAILED', `the VM supervisor ${what}:\n${logged}`)
}

/** The last `lines` lines of a VM's log (its supervisor's, its console); '' when empty or missing. */
export function logTail(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  }
}
