import { processSchedMs } from '../util/process-cpu.js'
import { sleep } from '../util/timing.js'

/**
 * The guest is quiet once its QEMU used less than QUIET_CPU_MS of CPU, and waited less than that
 * for one, in each of QUIET_WINDOWS windows in a row.
 */
const WINDOW_MS = 50
const QUIET_CPU_MS = 5
const QUIET_WINDOWS = 2

/**
 * Waits until a VM's guest has nothing running: its QEMU (vCPUs and all) used under a tenth of a
 * CPU for 100 ms, and did not wait for one either, or `maxMs` passed. An idle guest under TCG costs its QEMU ~0 ms in most 50 ms
 * windows, with a blip of a few ms now and then (a timer).
 *
 * Why: a template saves whatever the guest was doing, and every VM restored from it finishes that
 * work, through a translation cache that starts empty. Seen: the agent's V8 optimizing a function
 * on a background thread when the template was saved, its compile finishing after every restore
 * (V8's trace: 542 ms of guest time, the TurboFan compiler's own code translated again by QEMU on
 * the vCPU the refresh and the agent's wake-up needed). docs/first-command.md has the figures.
 */
export async function untilGuestQuiet(
  pid: number | undefined,
  maxMs: number,
): Promise<{ quiet: boolean; waitedMs: number }> {
  const started = performance.now()
  let quietWindows = 0
  let before = processSchedMs(pid)
  while (before !== undefined && performance.now() - started < maxMs) {
    await sleep(WINDOW_MS)
    const now = processSchedMs(pid)
    if (now === undefined) break
    const ran = now.runMs - before.runMs
    const waited = now.waitMs - before.waitMs
    // A QEMU starved of CPU (8 clones on 2 cores) is busy, not quiet; a thread that ended between
    // the readings took its time with it (a negative difference): not known quiet either.
    const quiet = ran >= 0 && waited >= 0 && ran < QUIET_CPU_MS && waited < QUIET_CPU_MS
    quietWindows = quiet ? quietWindows + 1 : 0
    before = now
    if (quietWindows >= QUIET_WINDOWS) return { quiet: true, waitedMs: performance.now() - started }
  }
  return { quiet: false, waitedMs: performance.now() - started }
}
