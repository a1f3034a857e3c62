import type { LaunchSpec } from '../launch-spec.js'
import type { logger } from '../log.js'
import { loadDeviceState, saveDeviceState } from '../qemu/migration.js'
import type { AgentLink } from './agent-link.js'
import { BootFailure, type Deadline, deadlineSignal, withinDeadline } from './boot-deadline.js'
import { untilGuestQuiet } from './guest-quiet.js'
import type { QemuProcess } from './qemu-process.js'
import { mark } from './restore-timeline.js'

/** How long a guest agent gets to acknowledge a park before the state is saved regardless. */
const PARK_TIMEOUT_MS = 5_000

/**
 * Saves a running VM's device state to `file`: the agent parked (see AgentLink.park), the CPUs
 * stopped, the state written. With `shared`, RAM that lives in a shared file (a template's) is
 * not copied. QEMU stays stopped: the caller resumes it (a snapshot) or ends it (a template).
 * The one save for templates and snapshots.
 *
 * `settleMaxMs`: first wait up to that long for the parked guest to go quiet (guest-quiet.ts), so
 * that no work in flight is saved for every restore to finish (a template's). Resolves with a
 * line for the log when it waited.
 */
export async function saveState(
  qemu: QemuProcess,
  link: AgentLink,
  file: string,
  shared: boolean,
  settleMaxMs = 0,
): Promise<string | undefined> {
  const qmp = await qemu.connectQmp()
  await link.park(PARK_TIMEOUT_MS)
  const settled = settleMaxMs > 0 ? await untilGuestQuiet(qemu.pid, settleMaxMs) : undefined
  await qmp.execute('stop')
  await saveDeviceState(qmp, file, shared)
  if (!settled) return undefined
  const waited = Math.round(settled.waitedMs)
  return settled.quiet
    ? `guest quiet ${waited} ms after it parked`
    : `guest still busy ${waited} ms after it parked: saved as it was`
}

/** When the phases of a load ended (performance.now()), for the log. */
export interface LoadTimes {
  loaded: number
  refreshed: number
}

/**
 * Loads a state saved by saveState into `qemu` (started with `incoming`), then makes the guest its
 * own (refreshGuest). Both ports are connected before the state loads: their host side is as it
 * was when the state was saved, so the guest sees no change, and guest-setup and the parked agent
 * wake on our first bytes. The one load for template clones and snapshot rollbacks; what "ready"
 * means afterwards (untilReady) is the caller's.
 */
export async function loadState(
  qemu: QemuProcess,
  link: AgentLink,
  file: string,
  shared: boolean,
  spec: LaunchSpec,
  deadline: Deadline,
  log: ReturnType<typeof logger>,
): Promise<LoadTimes> {
  const within = <T>(work: Promise<T>) => withinDeadline(work, qemu, deadline)
  const qmp = await within(qemu.connectQmp())
  mark(spec.name, 'qmp connected')
  await within(link.connect(qemu, true))
  await within(qemu.setupPort)
  mark(spec.name, 'ports connected')
  await within(loadDeviceState(qmp, file, qemu.incomingSocket, shared, (what) => mark(spec.name, what)))
  const loaded = performance.now()
  await within(refreshGuest(qemu, spec, deadline, log))
  mark(spec.name, 'guest refreshed')
  return { loaded, refreshed: performance.now() }
}

/**
 * Makes a restored guest its own (clock, entropy, hostname) and starts its deferred root mount,
 * through guest-setup on its port (clone-refresh.c): no agent call, so it runs while the agent
 * wakes. Also after a snapshot is saved: the guest was paused meanwhile.
 */
export async function refreshGuest(
  qemu: QemuProcess,
  spec: LaunchSpec,
  deadline: Deadline,
  log: ReturnType<typeof logger>,
): Promise<void> {
  const port = await qemu.setupPort
  if (!port) throw new BootFailure('BOOT_FAILED', qemu.exitReason())
  const signal = deadlineSignal(deadline)
  try {
    // The module tree's place on this host: the guest's command line names the template maker's.
    const modules = spec.hostRoot && !spec.image ? spec.kernel.modulesDir : undefined
    const result = await port.refresh(spec.name, signal, modules)
    log('guest refreshed: clock stepped %d ms', result.clockStepMs)
  } catch (error) {
    if (signal.aborted)
      throw new BootFailure('BOOT_TIMEOUT', 'the restored VM did not refresh itself in time')
    throw error
  }
}
