import { type ChildProcess, spawn } from 'node:child_process'
import { offerEarlySupervisor, offeredEarlySupervisor, releaseEarlySupervisor } from './early-supervisor.js'
import { supervisorEnv, supervisorMainPath } from './supervisor-entry.js'

/**
 * A spare supervisor for a library caller's next VM.up(). A supervisor's Node start-up and the
 * loading of its modules are ~0.2 s of a restore's ~0.3 s on the host before the guest resumes
 * (docs/restore-to-ready.md). `vmctl run` starts its supervisor before it loads the CLI
 * (early-supervisor.ts); a process that calls VM.up() again and again (a test file's beforeEach)
 * gets the same from here: once this process has booted two VMs, each VM's destroy() starts one
 * `supervisor --await-launch` that loads and then waits on its stdin (or, handed its VM before it
 * loaded, starts that VM's QEMU first: early-launch.ts), offered to the next VM.up()
 * as an early supervisor (start-vm.ts hands it the VM directory).
 *
 * - It never outlives this process: it waits on a pipe whose only writer is this process, so when
 *   this process ends, however it ends (SIGKILL too), the pipe ends with nothing on it and the
 *   spare exits (supervisor-main.ts, early-launch.ts).
 * - It does not keep this process alive: the child and its pipes are unref'd.
 * - A supervisor takes the caller's environment (its debug log, its cache and code-cache
 *   directories, VMCTL_* switches) and working directory: a spare started under others than
 *   VM.up() runs with is let go unused (mayTakeEarlySupervisor), and VM.up() spawns one as before.
 * - VMCTL_SPARE_SUPERVISOR=0 turns it off: VM.up() neither starts nor takes a spare (one started
 *   before stays unused until this process ends, or the switch is off again).
 */
let spare: { child: ChildProcess; key: string } | undefined

/** VMs this process booted to ready (a spare is kept from the second on). */
let booted = 0
const SPARE_AFTER_BOOTS = 2

/** What makes two supervisors differ before they are handed a VM: environment and directory. */
function supervisorKey(env: NodeJS.ProcessEnv): string {
  const entries = Object.entries(env)
    .filter(([name, value]) => value !== undefined && name !== 'VMCTL_SPARE_SUPERVISOR')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return JSON.stringify([process.cwd(), entries])
}

/** Called by VM.up() once its VM is ready: counts it. */
export function vmBooted(): void {
  booted++
}

/**
 * Called by a VM's destroy(): keeps a spare for the next VM.up(), when this process wants one.
 * Started here, not when a VM gets ready: its start (~0.2 s of CPU) then runs beside a teardown,
 * not beside the new VM's first command (docs/restore-to-ready.md has both, measured).
 */
export function spareSupervisorAtDestroy(): void {
  if (booted < SPARE_AFTER_BOOTS || process.env.VMCTL_SPARE_SUPERVISOR === '0') return
  if (offeredEarlySupervisor()) return // one waits already (a spare, or the CLI's own)
  startSpareSupervisor()
}

/**
 * Starts a spare supervisor and offers it to the next VM.up() in this process. Exported for its
 * test (a process killed with its spare waiting); a VM goes through spareSupervisorAtDestroy.
 */
export function startSpareSupervisor(): ChildProcess | undefined {
  const env = supervisorEnv()
  let child: ChildProcess
  try {
    child = spawn(process.execPath, [supervisorMainPath(), '--await-launch'], {
      detached: true,
      // stderr: what Node prints if it dies before its hand-off (early-supervisor.ts keeps it).
      stdio: ['pipe', 'ignore', 'pipe'],
      env,
    })
  } catch {
    return undefined // VM.up() spawns its supervisor as before, and says what is wrong if it cannot
  }
  child.on('error', () => {})
  child.stdin?.on('error', () => {})
  child.unref()
  ;(child.stdin as { unref?: () => void } | null)?.unref?.()
  ;(child.stderr as { unref?: () => void } | null)?.unref?.()
  offerEarlySupervisor(child)
  spare = { child, key: supervisorKey(env) }
  return child
}

/**
 * Called by VM.up() before it takes an early supervisor: whether it may. Not the spare when
 * VMCTL_SPARE_SUPERVISOR=0 (it stays offered), nor when this VM.up()'s supervisor would run under
 * another environment or directory than the spare's (it is let go). The CLI's own early
 * supervisor, or none, is always taken.
 */
export function mayTakeEarlySupervisor(): boolean {
  const offered = offeredEarlySupervisor()
  if (!spare || offered !== spare.child) {
    spare = undefined
    return true
  }
  if (process.env.VMCTL_SPARE_SUPERVISOR === '0') return false
  if (spare.key !== supervisorKey(supervisorEnv())) {
    releaseEarlySupervisor()
    spare = undefined
    return false
  }
  spare = undefined
  return true
}
