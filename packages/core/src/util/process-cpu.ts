import { readdirSync, readFileSync } from 'node:fs'

/**
 * CPU time a process has used so far, in ms, summed over its threads (each thread's schedstat:
 * nanoseconds on a CPU, finer than /proc/PID/stat's 10 ms ticks). Undefined once it is gone or
 * where /proc has no schedstat.
 */
export function processCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined
  let tasks: string[]
  try {
    tasks = readdirSync(`/proc/${pid}/task`)
  } catch {
    return undefined
  }
  let ns = 0
  for (const task of tasks) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0])
    } catch {} // a thread that ended since the listing (QEMU's I/O workers come and go)
  }
  return Number.isFinite(ns) ? ns / 1e6 : undefined
}
