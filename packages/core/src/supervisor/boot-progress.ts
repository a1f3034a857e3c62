/**
 * Whether a cold boot's guest is making progress, from what the host can see of it: the console
 * bytes it wrote, the CPU time its QEMU used, and what QMP says of its vCPUs. Pure: the sampling
 * is hung-guest-watch.ts's.
 *
 * Why CPU time and not wall time: on two cores shared with other VMs a healthy guest can wait
 * minutes of wall time for its first line, but it cannot print it later than the CPU time its
 * boot needs to get there; QEMU that burnt many times that without a byte is stuck (a guest that
 * spins), however loaded the host. A guest whose vCPUs QEMU does not run at all (paused, waiting
 * for a migration, stopped by an error) uses no CPU: QMP's status says so instead.
 */

/** One look at a booting guest. */
export interface BootProgressSample {
  /** Console bytes this QEMU's guest wrote. */
  consoleBytes: number
  /** CPU time QEMU used since it started (undefined: /proc could not say). */
  cpuMs: number | undefined
  /** QMP `query-status`'s `status` ('running', 'prelaunch', 'paused', 'inmigrate'...); undefined: no answer. */
  status: string | undefined
}

export interface HangBounds {
  /** CPU time without a console byte past which the guest is taken for hung. */
  cpuMs: number
  /** Consecutive samples with the vCPUs not running (and no byte) that make it hung. */
  notRunningSamples: number
}

/**
 * QEMU's CPU time to a healthy cold boot's first console byte, the worst of 4 boots measured here
 * under TCG at load averages 18-25 (2.0-2.4 s, while wall time was 3.0-6.5 s): the kernel's
 * decompression and early set-up, before `quiet` lets it print anything.
 */
export const HEALTHY_FIRST_BYTE_CPU_MS = 2_400

/**
 * Eight times a healthy boot's CPU time is far from a slow boot, and still well under the 180 s
 * deadline in wall time for a guest that spins (QEMU got about half a core at load 20 here).
 */
export const DEFAULT_HANG_BOUNDS: HangBounds = { cpuMs: 8 * HEALTHY_FIRST_BYTE_CPU_MS, notRunningSamples: 3 }

export type BootProgressVerdict =
  | { verdict: 'progressed' }
  | { verdict: 'waiting'; notRunningSamples: number }
  | { verdict: 'hung'; reason: string }

/**
 * The verdict on `sample`, given how many samples before it in a row had the vCPUs not running.
 * A status QMP did not give resets that count: a QEMU too starved to answer is judged on its CPU
 * time alone.
 */
export function judgeBootProgress(
  sample: BootProgressSample,
  notRunningBefore: number,
  bounds: HangBounds = DEFAULT_HANG_BOUNDS,
): BootProgressVerdict {
  if (sample.consoleBytes > 0) return { verdict: 'progressed' }
  const notRunning = sample.status !== undefined && sample.status !== 'running' ? notRunningBefore + 1 : 0
  if (notRunning >= bounds.notRunningSamples)
    return {
      verdict: 'hung',
      reason: `QEMU is not running the guest's vCPUs (QMP status '${sample.status}') and the guest has written nothing to its console`,
    }
  if (sample.cpuMs !== undefined && sample.cpuMs >= bounds.cpuMs)
    return {
      verdict: 'hung',
      reason: `QEMU used ${(sample.cpuMs / 1000).toFixed(1)} s of CPU time and the guest has written nothing to its console (a healthy boot prints its first byte within ${HEALTHY_FIRST_BYTE_CPU_MS / 1000} s of CPU)`,
    }
  return { verdict: 'waiting', notRunningSamples: notRunning }
}
