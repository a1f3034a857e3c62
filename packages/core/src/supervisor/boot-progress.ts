/**
 * Whether a cold boot's guest is making progress, from what the host can see of it: the bytes it
 * sent (console, setup port, the agent's handshake), the CPU time its QEMU used, and what QMP says
 * of its vCPUs. Pure: the sampling is hung-guest-watch.ts's.
 *
 * Why CPU time and not wall time: on two cores shared with other VMs a healthy guest can wait
 * minutes of wall time for its first line, but it cannot print it later than the CPU time its
 * boot needs to get there; QEMU that burnt many times that without a byte is stuck (a guest that
 * spins), however loaded the host. A guest whose vCPUs QEMU does not run at all (paused, waiting
 * for a migration, stopped by an error) uses no CPU: QMP's status says so instead.
 */

/** One look at a booting guest. */
export interface BootProgressSample {
  /** Bytes this QEMU's guest sent: its console, its setup port, its agent's handshake. */
  guestBytes: number
  /** CPU time QEMU used since it started (undefined: /proc could not say). */
  cpuMs: number | undefined
  /** QMP `query-status`'s `status` ('running', 'prelaunch', 'paused', 'inmigrate'...); undefined: no answer. */
  status: string | undefined
  /** The guest kernel's soft lockup report on this QEMU's console, if it printed one (SOFT_LOCKUP). */
  lockup?: string | undefined
}

/**
 * The kernel's report of a CPU that ran kernel code without scheduling for 20 s and more. It keeps
 * printing one every ~30 s, so the guest is never silent: only this line tells that boot is stuck
 * (a fresh-clone CI run lost 180 s to one, stuck in early boot after "PCI: Fatal: No config space
 * access function found", its QEMU busy all along).
 */
export const SOFT_LOCKUP = /watchdog: BUG: soft lockup - CPU#\d+ stuck for \d+s!/

/**
 * QEMU CPU time between two samples (one a second) past which a lockup report is believed: the
 * guest was spinning, not starved. A QEMU that the host does not schedule gets a guest watchdog
 * that fires late, with a false report, once it runs again: then QEMU used little CPU meanwhile.
 */
const LOCKUP_BUSY_CPU_MS = 500

export interface HangBounds {
  /** CPU time without a byte from the guest past which it is taken for hung (Infinity: never). */
  cpuMs: number
  /**
   * The same once the guest has sent a byte, counted from its last one (default: `cpuMs`). A
   * kernel under `quiet` prints a line or two early and then nothing until vmctl's init, and a
   * slow kernel (debug options under TCG) or many vCPUs stretch that silence.
   */
  afterByteCpuMs?: number
  /** Consecutive samples with the vCPUs not running (and no byte) that make it hung. */
  notRunningSamples: number
  /** QMP statuses that are a debugger's stops for this VM (a gdb stub in its qemuArgs). */
  debuggerStops?: readonly string[]
}

/**
 * QEMU's CPU time to a healthy cold boot's first line of vmctl's own init (`vmctl-init: started`),
 * the worst of 6 cold boots measured here under TCG at load averages 12-29 (4.1-7.0 s; the kernel's
 * own first line came at 1.5-1.7 s, the agent's at 9.9-10.3 s). The init's line, not the kernel's:
 * a kernel that prints nothing under `quiet` still has it, whatever kernel the user boots.
 */
export const HEALTHY_FIRST_LINE_CPU_MS = 7_000

/**
 * QEMU's CPU time to a healthy cold boot's agent line, the worst of the same 6 boots (9.9-10.3 s):
 * no silence between two of a healthy boot's bytes lasts longer than the whole boot.
 */
export const HEALTHY_BOOT_CPU_MS = 10_500

/**
 * Four times the worst healthy boot's first line is far from a slow boot (most print their first
 * byte in a twentieth of it), over twice a whole healthy boot (the bound for silence after a byte
 * too), and still well under the 180 s deadline in wall time for a guest that spins (QEMU got
 * about half a core at load 20 here).
 */
export const DEFAULT_HANG_BOUNDS: HangBounds = { cpuMs: 4 * HEALTHY_FIRST_LINE_CPU_MS, notRunningSamples: 3 }

/**
 * The bounds for a VM whose kernel arguments are `kernelArgs`: a user's `console=` may send the
 * console where the host does not read it (the init's line too), so silence proves nothing and
 * only QMP's word on the vCPUs counts. With a gdb stub in `qemuArgs` (`-s`, `-gdb`), a debugger
 * may hold the vCPUs: QEMU pauses them when gdb attaches or interrupts ('paused'), and with `-S`
 * (`-s -S`, the usual way to debug a boot from its first instruction) they wait for gdb's
 * `continue` ('prelaunch'). `-S` alone has nothing to continue it (boot-sequence.ts refuses it).
 */
export function hangBoundsFor(
  kernelArgs: readonly string[],
  qemuArgs: readonly string[] = [],
  boot: { cpus: number; slowBootDeclared: boolean } = { cpus: 2, slowBootDeclared: false },
): HangBounds {
  let bounds: HangBounds = {
    ...DEFAULT_HANG_BOUNDS,
    afterByteCpuMs: boot.slowBootDeclared
      ? Number.POSITIVE_INFINITY
      : 2 * DEFAULT_HANG_BOUNDS.cpuMs * Math.max(1, boot.cpus / 2),
  }
  if (kernelArgs.some((arg) => arg.startsWith('console=')))
    bounds = { ...bounds, cpuMs: Number.POSITIVE_INFINITY, afterByteCpuMs: Number.POSITIVE_INFINITY }
  if (qemuArgs.some((arg) => arg === '-s' || arg === '-gdb'))
    bounds = { ...bounds, debuggerStops: qemuArgs.includes('-S') ? ['paused', 'prelaunch'] : ['paused'] }
  return bounds
}

/**
 * Statuses in which someone stopped the vCPUs on purpose: a debugger attached through the user's
 * `-s`/`-gdb` sits at a breakpoint ('debug'), a guest suspended itself ('suspended'). Not a hang,
 * however long it lasts.
 */
const STOPPED_ON_PURPOSE = new Set(['debug', 'suspended'])

/** What the watch carries from one sample to the next. */
export interface BootWatchState {
  /** QEMU's CPU time at the last sample (0 before the first). */
  cpuMs?: number
  /** Samples in a row, up to the last, with the vCPUs not running and no new byte. */
  notRunningSamples: number
  /** Guest bytes at the last sample. */
  guestBytes: number
  /** QEMU's CPU time when the last new byte was seen (0: none yet, counted from QEMU's start). */
  cpuMsAtLastByte: number
}

export const BOOT_WATCH_START: BootWatchState = { notRunningSamples: 0, guestBytes: 0, cpuMsAtLastByte: 0 }

export type BootProgressVerdict =
  | { verdict: 'progressed' | 'waiting'; state: BootWatchState }
  | { verdict: 'hung'; reason: string }

/**
 * The verdict on `sample`, given what the samples before it left (`state`). New bytes from the
 * guest are progress: the CPU bound counts from the last of them, so a guest that printed its
 * first lines and then went silent (a stall inside the kernel's boot, before the init's line) is
 * judged as one that never printed. A status QMP did not give resets the not-running count: a
 * QEMU too starved to answer is judged on its CPU time alone.
 */
export function judgeBootProgress(
  sample: BootProgressSample,
  state: BootWatchState,
  bounds: HangBounds = DEFAULT_HANG_BOUNDS,
): BootProgressVerdict {
  const busyMs = sample.cpuMs === undefined ? 0 : sample.cpuMs - (state.cpuMs ?? 0)
  if (sample.lockup && busyMs >= LOCKUP_BUSY_CPU_MS && bounds.cpuMs !== Number.POSITIVE_INFINITY)
    return {
      verdict: 'hung',
      reason: `the guest kernel reports a CPU stuck ("${sample.lockup}") while QEMU keeps busy (${Math.round(busyMs)} ms of CPU in the last second): its boot is stuck, not slow`,
    }
  if (sample.guestBytes > state.guestBytes)
    return {
      verdict: 'progressed',
      state: {
        notRunningSamples: 0,
        guestBytes: sample.guestBytes,
        cpuMsAtLastByte: sample.cpuMs ?? state.cpuMsAtLastByte,
        cpuMs: sample.cpuMs ?? state.cpuMs,
      },
    }
  const chosen =
    STOPPED_ON_PURPOSE.has(sample.status ?? '') || bounds.debuggerStops?.includes(sample.status ?? '')
  const notRunning =
    sample.status !== undefined && sample.status !== 'running' && !chosen ? state.notRunningSamples + 1 : 0
  const silence = state.guestBytes === 0 ? 'the guest has sent nothing' : 'the guest has sent nothing more'
  if (notRunning >= bounds.notRunningSamples)
    return {
      verdict: 'hung',
      reason: `QEMU is not running the guest's vCPUs (QMP status '${sample.status}') and ${silence}`,
    }
  const silentCpuMs = sample.cpuMs === undefined ? undefined : sample.cpuMs - state.cpuMsAtLastByte
  const bound = state.guestBytes === 0 ? bounds.cpuMs : (bounds.afterByteCpuMs ?? bounds.cpuMs)
  if (silentCpuMs !== undefined && silentCpuMs >= bound)
    return {
      verdict: 'hung',
      reason:
        state.guestBytes === 0
          ? `QEMU used ${(silentCpuMs / 1000).toFixed(1)} s of CPU time and the guest has sent nothing, not a console byte (a healthy boot prints its first line within ${HEALTHY_FIRST_LINE_CPU_MS / 1000} s of CPU)`
          : `QEMU used ${(silentCpuMs / 1000).toFixed(1)} s of CPU time since the guest's last byte (${state.guestBytes} bytes in all; a healthy boot is past its agent's start within ${HEALTHY_BOOT_CPU_MS / 1000} s of CPU; a kernel this slow on purpose: a bootTimeoutMs above the default lifts this bound)`,
    }
  return {
    verdict: 'waiting',
    state: { ...state, notRunningSamples: notRunning, cpuMs: sample.cpuMs ?? state.cpuMs },
  }
}
