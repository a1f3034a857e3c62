import { closeSync, constants as fsConstants, openSync, readFileSync } from 'node:fs'
import type { LogEntry, OomKill } from '../generated/vmctl/agent/v1/agent.js'
import { drainKmsg } from './kernel-log.js'

/** The kernel's line for each process its OOM killer ends: for the guest's memory, or a memory cgroup's. */
const KILLED_PROCESS = /^(Memory cgroup )?[Oo]ut of memory: Killed process (\d+) \(([^)]*)\)/

/** How far before a command's start a kill is still counted as its (the two clocks differ a little). */
const CLOCK_SLACK_US = 1_000_000

/** How many kills are kept for commands that look later (concurrent commands each look). */
const KEPT_KILLS = 64

interface LoggedKill extends OomKill {
  /** The kernel log's timestamp: µs since boot. */
  atUs: number
}

/** Reads the guest kernel's OOM kills, once there are any: see oomKillsSince. */
class OomKillLog {
  /** /dev/kmsg, opened the first time kills are counted; each read gives the records after the last. */
  private kmsg: number | undefined
  private readonly buffer = Buffer.alloc(8192)
  /** /proc/vmstat's oom_kill when the kernel log was last read. */
  private counted = 0
  private readonly kills: LoggedKill[] = []

  /**
   * The kills logged from `sinceUs` (CLOCK_MONOTONIC µs, the kernel log's clock near enough) on, of
   * processes started from `firstPid` on (a command's own processes come after it).
   */
  since(sinceUs: number, firstPid: number): OomKill[] {
    const count = oomKillCounter()
    if (count !== undefined && count > this.counted) {
      this.readLog()
      this.counted = count
    }
    return this.kills
      .filter((kill) => kill.atUs >= sinceUs - CLOCK_SLACK_US && kill.pid >= firstPid)
      .map(({ pid, command, cgroup }) => ({ pid, command, cgroup }))
  }

  private readLog(): void {
    try {
      this.kmsg ??= openSync('/dev/kmsg', fsConstants.O_RDONLY | fsConstants.O_NONBLOCK)
      drainKmsg(this.kmsg, this.buffer, (entry) => {
        const kill = oomKillIn(entry)
        if (!kill) return
        this.kills.push(kill)
        if (this.kills.length > KEPT_KILLS) this.kills.shift()
      })
    } catch {
      // No kernel log to read (not a guest, or no permission), or it failed: no names to give.
      if (this.kmsg !== undefined) closeSync(this.kmsg)
      this.kmsg = undefined
    }
  }
}

/** An OOM kill, if this kernel log entry reports one. */
export function oomKillIn(entry: LogEntry): LoggedKill | undefined {
  const match = KILLED_PROCESS.exec(entry.message)
  if (!match) return undefined
  return {
    pid: Number(match[2]),
    command: match[3]!,
    cgroup: match[1] !== undefined,
    atUs: entry.timestampUs,
  }
}

/** The kernel's count of OOM kills since boot (/proc/vmstat's oom_kill), if it has one. */
export function oomKillCounter(text?: string): number | undefined {
  let vmstat = text
  if (vmstat === undefined) {
    try {
      vmstat = readFileSync('/proc/vmstat', 'utf8')
    } catch {
      return undefined
    }
  }
  const match = /^oom_kill (\d+)$/m.exec(vmstat)
  return match ? Number(match[1]) : undefined
}

/** Now, on the clock oomKillsSince takes. */
export function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n)
}

const log = new OomKillLog()

/**
 * The processes the guest kernel's OOM killer killed from `sinceUs` (monotonicMicros()) on, whose
 * pid is `firstPid` (the command's) or later: asked when a command failed. Pids are handed out in
 * increasing order, so an earlier command's process killed just before this one started is not
 * this one's (after the pid counter wraps, one of its own may be missed). It costs one read of
 * /proc/vmstat when there were no kills since the last look; the kernel log is read only when
 * its count of OOM kills went up.
 */
export function oomKillsSince(sinceUs: number, firstPid: number): OomKill[] {
  return log.since(sinceUs, firstPid)
}
