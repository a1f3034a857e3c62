import { writeFileSync } from 'node:fs'
import type { LaunchSpec } from '../launch-spec.js'
import { logger } from '../log.js'
import { readLaunchSpec } from '../read-launch-spec.js'
import type { ControlEvent, VmStatus } from '../supervisor/control-protocol.js'
import { mark } from '../supervisor/restore-timeline.js'
import type { SupervisorClient } from '../supervisor/supervisor-client.js'
import { generateVmName, isAlive, VmDirectory } from '../supervisor/vm-directory.js'
import { pollUntil } from '../util/timing.js'
import { earlyQemuPlan } from './early-qemu-plan.js'
import { connectControl, spawnSupervisor } from './supervisor-spawn.js'

const log = logger('spare')

/**
 * A spare VM for this process's next VM.up(): restored from the same template, warmed and paused
 * by its supervisor (supervisor/spare-park.ts), then taken by a VM.up() of the same definition,
 * which gives it its name. What that VM.up() then waits for is a rename, a resume and the guest's
 * refresh (clock, entropy, hostname), and its first command finds QEMU's translation of the exec
 * path made (docs/spare-vm.md has both, measured).
 *
 * - When: once a VM of the same definition is destroyed and the two VMs before it were of that
 *   definition (a test file's `beforeEach`, a benchmark's rounds). Not from the first VM: a
 *   process that makes one VM (`vmctl run`, a file-scoped fixture) would pay a restore for
 *   nothing. One spare at a time; a VM.up() of another definition lets it go.
 * - What: VMs that live and die with this process and that a spare can stand for whole: not
 *   persistent, no networks (their addresses and switch ports are the VM's), no image (its
 *   overlay lives in the VM's directory), from a template.
 * - It never outlives this process: this process holds its lease (the control connection), so
 *   when this process ends, however (SIGKILL too), its supervisor tears it down; nor does it keep
 *   this process alive (the connection and the child are unref'd).
 * - The cost: one restore's CPU in the background (~1 s of QEMU CPU under TCG, a fraction with
 *   KVM), and a paused VM's RAM while it waits, for the last spare of a process that never uses it.
 * - VMCTL_SPARE_VM=0 turns it off.
 */
interface Spare {
  key: string
  directory: VmDirectory
  pid: number | undefined
  /** Its control connection, attached with the lease; undefined once it failed. */
  control: Promise<SupervisorClient | undefined>
  /** The first event it sends: `failed` or `exited` while it waits, `ready` once adopted. */
  event: Promise<ControlEvent>
}

let spare: Spare | undefined
/** The definitions of the VMs this process booted and has not destroyed, by name. */
const running = new Map<string, string>()
/** The definitions of the last VMs booted here, newest last (two are kept). */
const recent: string[] = []
const SPARE_AFTER_SAME = 2

/** What a spare must share with the VM.up() that takes it: everything but the VM's identity. */
export function definitionKey(spec: LaunchSpec): string {
  const { name: _n, createdAt: _c, creatorPid: _p, spare: _s, ...definition } = spec
  return JSON.stringify([process.cwd(), definition])
}

function eligible(spec: LaunchSpec): boolean {
  return (
    process.env.VMCTL_SPARE_VM !== '0' &&
    spec.templates &&
    !spec.persistent &&
    !spec.image &&
    !spec.networkSockets?.length
  )
}

/** Called by VM.up() once its VM is ready. */
export function spareVmBooted(spec: LaunchSpec): void {
  const key = definitionKey(spec)
  running.set(spec.name, key)
  recent.push(key)
  if (recent.length > SPARE_AFTER_SAME) recent.shift()
}

/**
 * Called by a VM's destroy(): starts a spare like it, when this process wants one. Returns
 * whether one waits now (then no spare supervisor is needed: the spare has its own).
 */
export function spareVmAtDestroy(directory: VmDirectory): boolean {
  const name = directory.name
  const key = running.get(name)
  running.delete(name)
  if (spare) return true
  if (!key || recent.length < SPARE_AFTER_SAME || recent.some((k) => k !== key)) return false
  const spec = readLaunchSpec(directory.launchFile)
  if (!spec || !eligible(spec) || definitionKey(spec) !== key) return false
  try {
    spare = startSpare(spec)
  } catch (error) {
    log('no spare: %s', (error as Error).message)
    return false
  }
  return true
}

function startSpare(spec: LaunchSpec): Spare {
  const directory = new VmDirectory(generateVmName())
  directory.create()
  const spareSpec: LaunchSpec = {
    ...spec,
    name: directory.name,
    createdAt: new Date().toISOString(),
    creatorPid: process.pid,
    spare: true,
  }
  let child: ReturnType<typeof spawnSupervisor>
  try {
    writeFileSync(directory.launchFile, JSON.stringify(spareSpec, null, 2))
    child = spawnSupervisor(directory)
  } catch (error) {
    directory.remove()
    throw error
  }
  child.on('error', () => {})
  child.stdin?.on('error', () => {})
  const plan = earlyQemuPlan(spareSpec, directory)
  child.stdin?.end(plan ? JSON.stringify(plan) : '')
  child.unref()
  log('%s: spare started (supervisor pid %d)', directory.name, child.pid)
  let sent: (event: ControlEvent) => void = () => {}
  const event = new Promise<ControlEvent>((resolve) => {
    sent = resolve
  })
  const control = connectControl(directory, child.pid).then(
    (client) => {
      client.unref()
      client.on('event', sent)
      client.on('close', () =>
        sent({ event: 'exited', reason: 'the spare VM supervisor exited', consoleTail: '' }),
      )
      void client.request({ op: 'attach', lease: true })
      return client
    },
    (error: Error) => {
      sent({ event: 'exited', reason: error.message, consoleTail: '' })
      return undefined
    },
  )
  const started: Spare = { key: definitionKey(spareSpec), directory, pid: child.pid, control, event }
  // A spare that fails while it waits is let go at once (its supervisor has cleaned up).
  void event.then((first) => {
    if (first.event !== 'ready' && spare === started) {
      log('%s: spare lost: %s', directory.name, 'reason' in first ? first.reason : first.event)
      spare = undefined
    }
  })
  return started
}

/** What VM.up() gets from a spare it took: a VM ready under its name. */
export interface TakenSpare {
  status: VmStatus
  control: SupervisorClient
}

/**
 * Called by VM.up() once its launch is prepared (`spec` written in `directory`): takes the spare
 * when it is of this definition and gives it this VM's name; lets it go when it is not. Undefined:
 * no spare was taken (none, another definition, or it failed): the directory is as it was and
 * VM.up() boots its own. `budgetMs`: how long the adopted spare may take to report ready.
 */
export async function takeSpareVm(
  spec: LaunchSpec,
  directory: VmDirectory,
  budgetMs: number,
): Promise<TakenSpare | undefined> {
  const taken = spare
  if (!taken) return undefined
  spare = undefined
  const control = await taken.control
  if (!control || control.isClosed || !isAlive(taken.pid) || taken.key !== definitionKey(spec)) {
    if (control) log('%s: spare let go (another definition asked)', taken.directory.name)
    control?.close() // its lease: the spare tears itself down
    return undefined
  }
  mark(spec.name, `caller: taking spare ${taken.directory.name}`)
  control.ref()
  // The name passes to the spare's directory: VM.up()'s own (its launch.json only) goes.
  directory.remove()
  const reply = await control.request({ op: 'adopt', name: spec.name, createdAt: spec.createdAt })
  if (reply.ok === true) {
    const event = await Promise.race([
      taken.event,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), budgetMs).unref()),
    ])
    if (event?.event === 'ready') {
      control.unref()
      return { status: event.status, control }
    }
    log('%s: the adopted spare did not get ready: %s', spec.name, event ? JSON.stringify(event) : 'timeout')
  } else log('%s: spare %s not adopted: %s', spec.name, taken.directory.name, reply.error ?? reply.reply)
  control.close()
  // Back as it was for VM.up()'s own boot, once the spare's supervisor is gone: it removes its
  // directory, which may be this name's by now.
  await pollUntil(() => !isAlive(taken.pid), { timeoutMs: 5_000, everyMs: 20 })
  directory.create()
  writeFileSync(directory.launchFile, JSON.stringify(spec, null, 2))
  return undefined
}
