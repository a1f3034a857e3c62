import { readFileSync } from 'node:fs'

/** /proc reports times in USER_HZ, which Linux fixes at 100 for user space on every architecture. */
const USER_HZ = 100

/**
 * When the process `pid` started (ms since the epoch), from /proc, or undefined when it cannot be
 * read (no such process, not Linux). With a time a record says that process wrote, it tells the
 * writer from a later process that got its pid.
 */
export function processStartedAt(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command (which may hold spaces and parentheses): state is field 3, and
    // starttime field 22, so index 19 of what follows ") ".
    const startTicks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19])
    const bootLine = readFileSync('/proc/stat', 'utf8').match(/^btime (\d+)$/m)
    if (!bootLine || !Number.isFinite(startTicks)) return undefined
    return Number(bootLine[1]) * 1000 + (startTicks * 1000) / USER_HZ
  } catch {
    return undefined
  }
}

/**
 * The process that wrote `writtenAt` (an ISO time) as its own pid still runs: alive, and started
 * before that time (btime has a one-second grain, so one second of slack).
 */
export function isSameProcess(pid: number | undefined, writtenAt: string | undefined): boolean {
  if (pid === undefined) return false
  const started = processStartedAt(pid)
  const written = Date.parse(writtenAt ?? '')
  if (started === undefined || Number.isNaN(written)) return true // cannot tell: trust isAlive
  return started <= written + 1_000
}
