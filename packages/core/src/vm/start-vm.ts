import type { ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { BootFailedError, BootTimeoutError } from '../errors.js'
import { logger } from '../log.js'
import type { JoinedNetworks } from '../network/guest-network.js'
import type { ControlEvent, ErrorPayload } from '../supervisor/control-protocol.js'
import { mark } from '../supervisor/restore-timeline.js'
import type { SupervisorClient } from '../supervisor/supervisor-client.js'
import { isAlive, type VmDirectory } from '../supervisor/vm-directory.js'
import { pollUntil } from '../util/timing.js'
import { agentClient } from './agent-client.js'
import { earlyQemuPlan } from './early-qemu-plan.js'
import { takeEarlySupervisor } from './early-supervisor.js'
import { type BootInternals, prepareLaunch } from './prepare-launch.js'
import { mayTakeEarlySupervisor, reservationSettled, vmBooted } from './spare-supervisor.js'
import { spareVmReady, takeSpareVm } from './spare-vm.js'
import { connectControl, logTail, spawnSupervisor } from './supervisor-spawn.js'
import type { VmParts } from './vm-connection.js'
import type { VmOptions } from './vm-options.js'

const log = logger('boot')
/** The control socket closed before the supervisor said ready or failed. */
const SUPERVISOR_CLOSED = 'the VM supervisor exited during boot without a word'

/**
 * The caller's half of a boot: prepares the launch (prepare-launch.ts), starts the VM's supervisor
 * (a detached process, by file path: supervisor-main.ts is the other half) and waits for it to
 * report the agent healthy or the boot failed. On failure nothing is left: the supervisor is
 * stopped and the VM's directory removed before the error is thrown.
 */
export async function startVm(raw: VmOptions | undefined, internals: BootInternals = {}): Promise<VmParts> {
  const { spec, directory, env, bootBudgetMs, networks, keepSpare } = await prepareLaunch(raw, internals)
  mark(spec.name, 'caller: launch prepared')
  const spare = await takeSpareVm(spec, directory, bootBudgetMs, keepSpare)
  if (spare) {
    reservationSettled(spec.name, undefined)
    mark(spec.name, 'caller: spare ready')
    vmBooted()
    spareVmReady(spec, keepSpare)
    return {
      status: spare.status,
      control: spare.control,
      directory,
      env,
      agent: agentClient(directory),
      networks,
    }
  }
  const supervisor =
    (mayTakeEarlySupervisor() ? handOver(directory) : undefined) ?? startSupervisor(directory, networks)
  reservationSettled(spec.name, supervisor)
  supervisor.on('error', () => {}) // a spawn failure shows as a supervisor that never answers
  // Planned once the supervisor exists, not before: a caller killed between making the VM's
  // directory and this spawn leaves that directory to nobody, so that window stays a few system
  // calls long (the plan takes milliseconds, tens on a loaded host: chaos caught a directory left
  // there). A caller killed before the plan is written gives its supervisor an empty one.
  supervisor.stdin?.on('error', () => {})
  const plan = earlyQemuPlan(spec, directory.path)
  supervisor.stdin?.end(plan ? JSON.stringify(plan) : '')
  supervisor.unref()
  log('%s: supervisor pid %d', spec.name, supervisor.pid)
  mark(spec.name, 'caller: supervisor spawned')

  let control: SupervisorClient | undefined
  try {
    control = await connectControl(directory, supervisor.pid)
    mark(spec.name, 'caller: control connected')
    const outcome = await waitForBoot(control, bootBudgetMs)
    mark(spec.name, `caller: ${outcome.event} event`)
    if (outcome.event === 'ready') {
      control.unref()
      vmBooted()
      spareVmReady(spec, keepSpare)
      return { status: outcome.status, control, directory, env, agent: agentClient(directory), networks }
    }
    if (outcome.event === 'exited' && outcome.reason === SUPERVISOR_CLOSED) {
      // No word from it: it crashed or was killed. What it logged last is the cause, and its
      // directory is still there (a supervisor removes it only when it ends by itself).
      await pollUntil(() => !isAlive(supervisor.pid), { timeoutMs: 2_000, everyMs: 20 })
      const logged = logTail(directory.supervisorLog)
      const why = `${SUPERVISOR_CLOSED} (pid ${supervisor.pid}: killed, or crashed); ${
        logged ? `its log ends:\n${logged}` : 'its log is empty (DEBUG=vmctl:supervisor logs its steps)'
      }`
      throw new BootFailedError(spec.name, why, logTail(directory.consoleLog))
    }
    throw bootError(spec.name, outcome.event === 'failed' ? outcome.error : undefined, outcome)
  } catch (error) {
    networks?.leave()
    control?.close()
    try {
      if (supervisor.pid && isAlive(supervisor.pid)) process.kill(supervisor.pid, 'SIGTERM')
    } catch {}
    await pollUntil(() => !existsSync(directory.path) || !isAlive(supervisor.pid), {
      timeoutMs: 5_000,
      everyMs: 20,
    })
    if (!isAlive(supervisor.pid)) directory.remove()
    throw error
  }
}

/**
 * The supervisor this process started before the VM was known (early-supervisor.ts), told its VM
 * directory at once: the directory then has an owner as soon as it would with a spawn, sooner.
 */
function handOver(directory: VmDirectory): ChildProcess | undefined {
  const early = takeEarlySupervisor(directory.supervisorLog)
  early?.stdin?.write(`${JSON.stringify(directory.path)}\n`)
  return early
}

function startSupervisor(directory: VmDirectory, networks: JoinedNetworks | undefined): ChildProcess {
  try {
    return spawnSupervisor(directory)
  } catch (error) {
    // Nothing runs yet: the directory and the networks joined for it are all there is to undo.
    networks?.leave()
    directory.remove()
    throw error
  }
}

function bootError(
  name: string,
  failure: ErrorPayload | undefined,
  outcome: ControlEvent | { event: 'timeout' },
): Error {
  if (failure?.code === 'BOOT_TIMEOUT')
    return new BootTimeoutError(
      name,
      failure.timeoutMs,
      failure.accel,
      failure.consoleTail,
      failure.message,
      failure.qemu,
    )
  if (failure) return new BootFailedError(name, failure.message, failure.consoleTail)
  if (outcome.event === 'exited') return new BootFailedError(name, outcome.reason, outcome.consoleTail)
  return new BootFailedError(name, 'its supervisor stopped answering', '')
}

function waitForBoot(
  control: SupervisorClient,
  budgetMs: number,
): Promise<ControlEvent | { event: 'timeout' }> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ event: 'timeout' }), budgetMs)
    control.on('event', (event) => {
      clearTimeout(timer)
      resolve(event)
    })
    control.on('close', () => {
      clearTimeout(timer)
      resolve({ event: 'exited', reason: SUPERVISOR_CLOSED, consoleTail: '' })
    })
    void control.request({ op: 'attach', lease: true })
  })
}
