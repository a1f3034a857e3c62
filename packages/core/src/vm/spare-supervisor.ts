import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { readLaunchSpec } from '../read-launch-spec.js'
import { PRESTART_VARIABLE, prestartDirs, sweepPrestartDirs } from '../supervisor/prestarted-qemu.js'
import { generateVmName, type VmDirectory } from '../supervisor/vm-directory.js'
import { earlyQemuPlan } from './early-qemu-plan.js'
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
/** The socket directory of the QEMU the offered spare started (prestarted-qemu.ts), if any. */
let spareSocketDir: string | undefined

let exitHooked = false

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
 * not beside the new VM's first command (docs/restore-to-ready.md has both, measured). The spare
 * also starts the QEMU of a clone of the VM destroyed, the likeliest next one (prestarted-qemu.ts).
 */
export function spareSupervisorAtDestroy(destroyed?: VmDirectory): void {
  if (booted < SPARE_AFTER_BOOTS || process.env.VMCTL_SPARE_SUPERVISOR === '0') return
  if (offeredEarlySupervisor()) return // one waits already (a spare, or the CLI's own)
  startSpareSupervisor(destroyed)
}

/**
 * The name the offered spare's QEMU was started for (its hostname is on QEMU's command line, where
 * `ps` and the tests find a VM's QEMU): the next VM.up() without a name of its own takes it
 * (takeReservedVmName), so that its clone's command is the QEMU's. A VM.up() that takes the name
 * but not the spare, or the spare but not the name, is correct all the same: the supervisor adopts
 * a QEMU only for the very command it would run (EarlyQemu.take), and kills it otherwise.
 */
let reserved: { name: string; spare: ChildProcess } | undefined
/** The reserved name a VM.up() took, until it says which supervisor it took (reservationSettled). */
let nameTaken: { name: string; spare: ChildProcess } | undefined

/**
 * Called by prepareLaunch for a VM without a name: the name the offered spare's QEMU was started
 * for, when that VM.up() is to take that spare (none when it keeps a spare VM of its own, or the
 * spare is switched off or would run under another environment).
 */
export function takeReservedVmName(keepsSpareVm: boolean): string | undefined {
  const taken = reserved
  reserved = undefined
  if (!taken || keepsSpareVm || offeredEarlySupervisor() !== taken.spare) return undefined
  if (process.env.VMCTL_SPARE_SUPERVISOR === '0' || spare?.key !== supervisorKey(supervisorEnv()))
    return undefined
  nameTaken = taken
  return taken.name
}

/**
 * Called by VM.up() once it knows its supervisor: a VM that took the reserved name but not that
 * spare (a spare VM was taken instead) ends the spare still offered at once, so that no QEMU
 * started under its name runs beside its own. A spare another VM.up() took drops that QEMU itself.
 */
export function reservationSettled(name: string, supervisor: ChildProcess | undefined): void {
  const taken = nameTaken
  nameTaken = undefined
  if (!taken || taken.name !== name || taken.spare === supervisor) return
  if (offeredEarlySupervisor() !== taken.spare) return
  endOfferedSpare()
  releaseEarlySupervisor()
}

/**
 * The QEMU of a clone of `destroyed`, named `name`, for a spare supervisor to start, its sockets
 * in a directory of their own, as the variable the supervisor reads; none when that VM was no
 * template clone. VMCTL_PRESTART_QEMU=0 turns it off (the spare supervisor alone: one side of an A/B).
 */
function prestartFor(
  destroyed: VmDirectory | undefined,
  name: string,
): { socketDir: string; variable: string } | undefined {
  if (!destroyed || process.env.VMCTL_PRESTART_QEMU === '0') return undefined
  const spec = readLaunchSpec(destroyed.launchFile)
  // Only what a QEMU may open long before its VM: no image overlay (per VM), no host mounts (a
  // directory made again between two tests would be served as it was), no network (its switch
  // port is the VM's, taken when QEMU starts).
  if (!spec || spec.image || spec.mounts?.length || spec.networkSockets?.length) return undefined
  // A VM's directory is <runtime>/vms/<name>.
  const runtimeDir = dirname(dirname(destroyed.path))
  sweepPrestartDirs(runtimeDir)
  const socketDir = join(prestartDirs(runtimeDir), randomBytes(6).toString('hex'))
  // Unix socket paths are limited to 107 bytes.
  if (Buffer.byteLength(join(socketDir, 'setup.sock')) > 107) return undefined
  const plan = earlyQemuPlan({ ...spec, name }, socketDir)
  return plan && { socketDir, variable: JSON.stringify({ ...plan, socketDir }) }
}

/**
 * As this process exits, a spare still waiting goes at once, with its QEMU (the parent-death
 * signal) and that QEMU's sockets: left to notice the end of its stdin, it would first finish
 * loading its modules, and its QEMU outlive this process by that long. A process killed with a
 * signal leaves that to the spare (prestarted-qemu.ts).
 */
function endOfferedSpare(): void {
  if (!spare || offeredEarlySupervisor() !== spare.child) return
  spare.child.kill('SIGKILL') // Node sends nothing to a child it has seen exit
  if (spareSocketDir) rmSync(spareSocketDir, { recursive: true, force: true })
}

/**
 * Starts a spare supervisor and offers it to the next VM.up() in this process. Exported for its
 * test (a process killed with its spare waiting); a VM goes through spareSupervisorAtDestroy.
 */
export function startSpareSupervisor(destroyed?: VmDirectory): ChildProcess | undefined {
  const env = supervisorEnv()
  const name = generateVmName()
  const prestart = prestartFor(destroyed, name)
  let child: ChildProcess
  try {
    child = spawn(process.execPath, [supervisorMainPath(), '--await-launch'], {
      detached: true,
      // stderr: what Node prints if it dies before its hand-off (early-supervisor.ts keeps it).
      stdio: ['pipe', 'ignore', 'pipe'],
      env: prestart ? { ...env, [PRESTART_VARIABLE]: prestart.variable } : env,
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
  reserved = prestart && { name, spare: child }
  spareSocketDir = prestart?.socketDir
  if (!exitHooked) process.once('exit', endOfferedSpare)
  exitHooked = true
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
