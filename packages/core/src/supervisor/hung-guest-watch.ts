import type { logger } from '../log.js'
import { processCpuMs } from '../util/process-cpu.js'
import { sleep } from '../util/timing.js'
import {
  BOOT_WATCH_START,
  type BootProgressSample,
  DEFAULT_HANG_BOUNDS,
  type HangBounds,
  judgeBootProgress,
} from './boot-progress.js'
import type { QemuProcess } from './qemu-process.js'

/** A cold boot's guest that made no progress (boot-progress.ts): its QEMU is to be killed. */
export class HungGuest extends Error {}

/** How often the watch looks: a second is cheap (one /proc read, one QMP round trip). */
const SAMPLE_EVERY_MS = 1_000
/** A QMP answer later than this counts as none for this sample. */
const QMP_ANSWER_MS = 2_000

export interface HungGuestWatch {
  /** Rejects with a HungGuest once the guest is taken for hung; never resolves. */
  hung: Promise<never>
  stop: () => void
}

/**
 * Watches a cold-booting QEMU until `stop()` is called (its boot reached what the caller waited
 * for) or QEMU exits: its guest must keep sending bytes (`guestBytes`: console, ports, the agent's
 * handshake) within the bounds of boot-progress.ts. When the guest is taken for hung, what QMP says of its vCPUs (`query-status`,
 * `query-cpus-fast`, `info registers`) and QEMU's CPU time go to the supervisor's log first, so a
 * stall leaves its evidence behind (docs/vm-test-stalls.md), then `hung` rejects.
 */
export function watchForHungGuest(
  qemu: QemuProcess,
  guestBytes: () => number,
  log: ReturnType<typeof logger>,
  bounds: HangBounds = DEFAULT_HANG_BOUNDS,
  /** The guest kernel's soft lockup report on this QEMU's console, if any (boot-progress.ts's SOFT_LOCKUP). */
  lockup: () => string | undefined = () => undefined,
): HungGuestWatch {
  const stopper = new AbortController()
  const { signal } = stopper
  const hung = (async (): Promise<never> => {
    const started = performance.now()
    let state = BOOT_WATCH_START
    while (!signal.aborted && qemu.alive) {
      await sleep(SAMPLE_EVERY_MS, signal).catch(() => {})
      if (signal.aborted || !qemu.alive) break
      const sample: BootProgressSample = {
        guestBytes: guestBytes(),
        cpuMs: processCpuMs(qemu.pid),
        status: await qmpStatus(qemu),
        lockup: lockup(),
      }
      const judged = judgeBootProgress(sample, state, bounds)
      if (judged.verdict === 'hung') {
        log(
          'hung guest: %s (%d ms of wall time since QEMU started)',
          judged.reason,
          performance.now() - started,
        )
        await logQmpState(qemu, log)
        throw new HungGuest(judged.reason)
      }
      if (judged.verdict === 'progressed' && state.guestBytes === 0)
        log(
          'boot progress: the first byte from the guest by %d ms of QEMU CPU time, %d ms of wall time',
          Math.round(sample.cpuMs ?? -1),
          Math.round(performance.now() - started),
        )
      state = judged.state
    }
    // Stopped, or QEMU gone (the boot's own wait sees that): nothing more to say.
    return new Promise<never>(() => {})
  })()
  // A rejection nobody awaits (the boot ended otherwise first) must not end the process.
  hung.catch(() => {})
  return { hung, stop: () => stopper.abort() }
}

/** QMP's word on the vCPUs, if QMP answers in time (connecting it first: it is needed after ready anyway). */
async function qmpStatus(qemu: QemuProcess): Promise<string | undefined> {
  const status = within(
    qemu.connectQmp().then((qmp) => qmp.execute<{ status: string }>('query-status')),
    QMP_ANSWER_MS,
  )
  return (await status)?.status
}

async function logQmpState(qemu: QemuProcess, log: ReturnType<typeof logger>): Promise<void> {
  const qmp = qemu.qmp
  if (!qmp) {
    log('hung guest: QMP not connected, QEMU CPU time %d ms', Math.round(processCpuMs(qemu.pid) ?? -1))
    return
  }
  const ask = async (what: string, command: Promise<unknown>) => {
    const answer = await within(command, QMP_ANSWER_MS)
    log('hung guest: %s: %s', what, answer === undefined ? '(no answer)' : JSON.stringify(answer))
  }
  await ask('query-status', qmp.execute('query-status'))
  await ask('query-cpus-fast', qmp.execute('query-cpus-fast'))
  await ask('info registers', qmp.human('info registers'))
  log('hung guest: QEMU CPU time %d ms', Math.round(processCpuMs(qemu.pid) ?? -1))
}

/** `work`'s value, or undefined when it fails or takes longer than `ms`. */
async function within<T>(work: Promise<T>, ms: number): Promise<T | undefined> {
  work.catch(() => {})
  return Promise.race([work.catch(() => undefined), sleep(ms).then(() => undefined)])
}
