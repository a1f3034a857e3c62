import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { LaunchSpec } from '../launch-spec.js'
import { logger } from '../log.js'
import type { ControlEvent, VmStatus } from '../supervisor/control-protocol.js'
import { mark } from '../supervisor/restore-timeline.js'
import { SupervisorClient } from '../supervisor/supervisor-client.js'
import { generateVmName, isAlive, listVms, VmDirectory } from '../supervisor/vm-directory.js'
import { templateKey } from '../templates/template-key.js'
import { pollUntil } from '../util/timing.js'
import { earlyQemuPlan } from './early-qemu-plan.js'
import { connectControl, spawnSupervisor } from './supervisor-spawn.js'

const log = logger('spare')

/**
 * A spare VM for this process's next VM.up() (VmOptions.keepSpare, or VMCTL_SPARE_VM=1): restored
 * from the same template, warmed and paused by its supervisor (supervisor/spare-park.ts), then
 * taken by a VM.up() of the same definition, which gives it its name. What that VM.up() then
 * waits for is a rename, a resume and the guest's refresh (clock, entropy, hostname), and its
 * first command finds QEMU's translation of the exec path made (docs/spare-vm.md, measured).
 *
 * - When: as soon as a VM that keeps a spare is ready (taken from a spare or booted), if no spare
 *   waits. One at a time. Started with the VM, not at its destroy(): a test's next VM.up() follows
 *   its destroy() at once, and a spare started then is still booting when it is taken.
 * - What: VMs that live and die with this process and that a spare can stand for whole: not
 *   persistent, no networks (their addresses and switch ports are the VM's), no image (its
 *   overlay lives in the VM's directory), from a template.
 * - Taken by any VM.up() of its definition; let go by a VM.up() that keeps a spare of another.
 * - It never outlives this process: this process holds its lease (the control connection), so
 *   when this process ends, however (SIGKILL too), its supervisor tears it down; nor does it keep
 *   this process alive (the connection and the child are unref'd).
 * - The cost: one restore's CPU in the background (~1 s of QEMU CPU under TCG, a fraction with
 *   KVM), and a paused VM's RAM while it waits, for the last spare of a process that never uses it.
 * - VMCTL_SPARE_VM=0 turns it off: VM.up() neither starts, takes nor lets go a spare (one parked
 *   before stays parked, so an A/B can alternate the switch in one process).
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

/**
 * What a spare must share with the VM.up() that takes it: everything but the VM's identity, the
 * contents of its files (its template's key hashes them: a kernel rebuilt at the same path is
 * another VM), and the environment its supervisor runs with (supervisorEnvKey).
 */
export function definitionKey(spec: LaunchSpec): string {
  const { name: _n, createdAt: _c, creatorPid: _p, spare: _s, spareIdleMs: _i, ...definition } = spec
  return JSON.stringify([process.cwd(), definition, templateKey(spec), supervisorEnvKey()])
}

/**
 * The variables a supervisor reads that no spec field carries (DEBUG, VMCTL_*): a spare started
 * under others would serve a VM.up() with the settings of the run that started it.
 */
function supervisorEnvKey(): Array<[string, string]> {
  const own = new Set(['VMCTL_SPARE_VM', 'VMCTL_SPARE_IDLE_S', 'VMCTL_SPARE_SUPERVISOR'])
  return Object.entries(process.env)
    .filter(
      ([name, value]) =>
        value !== undefined && (name === 'DEBUG' || name.startsWith('VMCTL_')) && !own.has(name),
    )
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) as Array<[string, string]>
}

/** A lone spare's definition key, in its directory: what another process's VM.up() compares. */
const KEY_FILE = 'spare-key'

function loneSpareKey(directory: VmDirectory): string | undefined {
  try {
    return readFileSync(join(directory.path, KEY_FILE), 'utf8')
  } catch {
    return undefined
  }
}

function eligible(spec: LaunchSpec): boolean {
  return spec.templates && !spec.persistent && !spec.image && !spec.networkSockets?.length
}

/**
 * Called by VM.up() once its VM is ready: starts a spare like it when it keeps one and none waits
 * (this process's, or with `{ idleMs }` a lone one: any process's).
 */
export function spareVmReady(spec: LaunchSpec, keepSpare: boolean | { idleMs: number }): void {
  if (!keepSpare || process.env.VMCTL_SPARE_VM === '0' || !eligible(spec)) return
  try {
    if (typeof keepSpare === 'object') startLoneSpare(spec, keepSpare.idleMs)
    else if (!spare) spare = startSpare(spec)
  } catch (error) {
    log('no spare: %s', (error as Error).message)
  }
}

/**
 * A spare that outlives this process (`vmctl run` exits right after its command): its supervisor
 * gets no lease and no creator to watch, only `spareIdleMs` to wait for an adoption before it
 * ends itself (spare-park.ts). One per definition: none is started while one waits.
 */
function startLoneSpare(spec: LaunchSpec, idleMs: number): void {
  const key = definitionKey(spec)
  if (loneSpares().some((waiting) => waiting.key === key)) return
  const { directory, child } = spawnSpare(spec, { spareIdleMs: idleMs }, key)
  log('%s: lone spare started for %d ms (supervisor pid %d)', directory.name, idleMs, child.pid)
}

/**
 * A spare's directory, launch.json (`spec` as a spare, with `extra`) and supervisor, given its early
 * QEMU's plan; `key`, if given, written for other processes to match (loneSpareKey). Nothing is
 * left when the spawn fails.
 */
function spawnSpare(spec: LaunchSpec, extra: Partial<LaunchSpec>, key?: string) {
  const directory = new VmDirectory(generateVmName())
  directory.create()
  const spareSpec: LaunchSpec = {
    ...spec,
    name: directory.name,
    createdAt: new Date().toISOString(),
    creatorPid: process.pid,
    spare: true,
    ...extra,
  }
  let child: ReturnType<typeof spawnSupervisor>
  try {
    if (key !== undefined) writeFileSync(join(directory.path, KEY_FILE), key)
    writeFileSync(directory.launchFile, JSON.stringify(spareSpec, null, 2))
    child = spawnSupervisor(directory)
  } catch (error) {
    directory.remove()
    throw error
  }
  child.on('error', () => {})
  child.stdin?.on('error', () => {})
  const plan = earlyQemuPlan(spareSpec, directory.path)
  child.stdin?.end(plan ? JSON.stringify(plan) : '')
  child.unref()
  return { directory, child, spareSpec }
}

interface LoneSpare {
  directory: VmDirectory
  pid: number
  key: string
  state: 'booting' | 'parked'
}

/** The lone spares of this user that wait (booting or parked), with their definition keys. */
function loneSpares(): LoneSpare[] {
  const found: LoneSpare[] = []
  for (const { directory, status } of listVms()) {
    const key = status?.spare && status.state !== 'stopping' ? loneSpareKey(directory) : undefined
    if (key && status?.spare) found.push({ directory, pid: status.pid, key, state: status.spare })
  }
  return found
}

/**
 * Whether a spare VM waits (or boots) for this process's next VM.up(): a spare supervisor is then
 * of no use (the spare has its own).
 */
export function spareVmWaiting(): boolean {
  return spare !== undefined
}

function startSpare(spec: LaunchSpec): Spare {
  const { directory, child, spareSpec } = spawnSpare(spec, {})
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
 * when it is of this definition and gives it this VM's name. Undefined: no spare was taken (none,
 * another definition, or it failed): the directory is as it was and VM.up() boots its own. `budgetMs`: how long the adopted spare may take to report ready.
 */
export async function takeSpareVm(
  spec: LaunchSpec,
  directory: VmDirectory,
  budgetMs: number,
  keepSpare: boolean | { idleMs: number },
): Promise<TakenSpare | undefined> {
  // Off: neither taken nor let go (an A/B alternates the switch in one process).
  if (process.env.VMCTL_SPARE_VM === '0') return undefined
  const own = await takeOwnSpare(spec, directory, budgetMs, keepSpare)
  // Another process's, only for a caller that keeps spares itself (a plain VM.up() reads no
  // other VM's directory), and only of a definition a spare can stand for.
  if (own || !keepSpare || !eligible(spec)) return own
  return takeLoneSpare(spec, directory, budgetMs)
}

async function takeOwnSpare(
  spec: LaunchSpec,
  directory: VmDirectory,
  budgetMs: number,
  keepSpare: boolean | { idleMs: number },
): Promise<TakenSpare | undefined> {
  const taken = spare
  if (!taken) return undefined
  spare = undefined
  if (!eligible(spec) || taken.key !== definitionKey(spec)) {
    // Another definition: a VM.up() that keeps a spare of its own lets this one go (its lease:
    // the spare tears itself down); any other leaves it for a VM.up() of its definition.
    if (keepSpare === true) {
      log('%s: spare let go (another definition keeps a spare)', taken.directory.name)
      void taken.control.then((control) => control?.close())
    } else spare = taken
    return undefined
  }
  const control = await taken.control
  if (!control || control.isClosed || !isAlive(taken.pid)) {
    control?.close()
    return undefined
  }
  // Refused or not ready, it goes with its lease: this connection.
  return adopt({ ...taken, control }, spec, directory, budgetMs, false)
}

/**
 * Another process's lone spare of this definition (startLoneSpare), once parked (one still booting
 * would hold this VM.up() for its whole boot, and a failed one for longer): adopted with its
 * lease, so that it ends with this process as a VM it booted would. One taken by another process
 * first refuses the adoption: the next is tried, then none.
 */
async function takeLoneSpare(
  spec: LaunchSpec,
  directory: VmDirectory,
  budgetMs: number,
): Promise<TakenSpare | undefined> {
  const key = definitionKey(spec)
  for (const candidate of loneSpares()) {
    if (candidate.key !== key || candidate.state !== 'parked') continue
    const control = await SupervisorClient.connect(candidate.directory.controlSocket).catch(() => undefined)
    if (!control) continue
    const event = new Promise<ControlEvent>((resolve) => {
      control.on('event', resolve)
      control.on('close', () =>
        resolve({ event: 'exited', reason: 'the spare VM supervisor exited', consoleTail: '' }),
      )
    })
    await control.request({ op: 'attach', lease: false }).catch(() => {})
    const taken = await adopt({ ...candidate, control, event }, spec, directory, budgetMs, true)
    if (taken) {
      log('%s: took lone spare %s', spec.name, candidate.directory.name)
      return taken
    }
  }
  return undefined
}

/**
 * Gives the spare this VM's name (its directory and hostname) and waits for it to report ready.
 * Undefined when it was refused or did not get ready: `directory` is then as it was, for VM.up()'s
 * own boot.
 */
async function adopt(
  from: {
    directory: VmDirectory
    pid: number | undefined
    control: SupervisorClient
    event: Promise<ControlEvent>
  },
  spec: LaunchSpec,
  directory: VmDirectory,
  budgetMs: number,
  lease: boolean,
): Promise<TakenSpare | undefined> {
  const { control } = from
  mark(spec.name, `caller: taking spare ${from.directory.name}`)
  control.ref()
  // The name passes to the spare's directory: VM.up()'s own (its launch.json only) goes.
  directory.remove()
  const reply = await control
    .request({ op: 'adopt', name: spec.name, createdAt: spec.createdAt, lease })
    .catch((error: Error): Record<string, unknown> => ({ ok: false, error: error.message }))
  if (reply.ok === true) {
    const event = await Promise.race([
      from.event,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), budgetMs).unref()),
    ])
    if (event?.event === 'ready') {
      control.unref()
      return { status: event.status, control }
    }
    log('%s: the adopted spare did not get ready: %s', spec.name, event ? JSON.stringify(event) : 'timeout')
    control.close()
    // Its supervisor goes (the lease with this connection) and removes its directory, which is
    // this name's by now: wait for that before making it again.
    await pollUntil(() => !isAlive(from.pid), { timeoutMs: 5_000, everyMs: 20 })
  } else {
    log('%s: spare %s not adopted: %s', spec.name, from.directory.name, reply.error ?? reply.reply)
    control.close()
  }
  directory.create()
  writeFileSync(directory.launchFile, JSON.stringify(spec, null, 2))
  return undefined
}

/**
 * Lets the waiting spare go, if any, and resolves once its supervisor has gone (it removes its
 * directory and QEMU first). For tests and benchmarks that must leave nothing behind before
 * their process ends; a process that ends takes its spare with it anyway.
 */
export async function releaseSpareVm(): Promise<void> {
  const taken = spare
  spare = undefined
  if (!taken) return
  ;(await taken.control)?.close()
  await pollUntil(() => !isAlive(taken.pid), { timeoutMs: 10_000, everyMs: 20 })
}
