import { readdirSync, readFileSync } from 'node:fs'

/**
 * CPU time a process has used so far, in ms, summed over its threads (each thread's schedstat:
 * nanoseconds on a CPU, finer than /proc/PID/stat's 10 ms ticks). Undefined once it is gone or
 * where /proc has no schedstat.
 */
export function processCpuMs(pid: number | undefined): number | undefined {
  return processSchedMs(pid)?.runMs
}

/**
 * A process's time on a CPU (`runMs`) and waiting in a run queue for one (`waitMs`) so far, in ms,
 * summed over its threads (schedstat's first two fields). A thread that ends between two readings
 * takes its times with it: a difference can go down.
 */
export function processSchedMs(pid: number | undefined): { runMs: number; waitMs: number } | undefined {
  if (pid === undefined) return undefined
  let tasks: string[]
  try {
    tasks = readdirSync(`/proc/${pid}/task`)
  } catch {
    return undefined
  }
  let run = 0
  let wait = 0
  for (const task of tasks) {
    try {
      const [onCpu, waiting] = readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')
      run += Number(onCpu)
      wait += Number(waiting)
    } catch {} // a thread that ended since the listing (QEMU's I/O workers come and go)
  }
  return Number.isFinite(run) && Number.isFinite(wait) ? { runMs: run / 1e6, waitMs: wait / 1e6 } : undefined
}
