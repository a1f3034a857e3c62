import { performance } from 'node:perf_hooks'
import { agentLog } from './agent-log.js'

/**
 * Where an exec's time goes in the guest, for docs/first-command.md: with the kernel argument
 * vmctl_exec_timing=1 (the init hands it to the agent as an environment variable), each exec
 * prints one console line with its laps in ms: the start request read, how the
 * process was started (spawn() returning: the fork and the child's exec), its 'spawn' event, its
 * exit, and the exit status sent. Off by default: a console line costs serial-port exits under TCG.
 */
const ENABLED = process.env.vmctl_exec_timing === '1'
let reported = 0

export interface ExecTiming {
  lap(step: string): void
  done(how: string): void
}

const NOOP: ExecTiming = { lap() {}, done() {} }

export function execTiming(): ExecTiming {
  if (!ENABLED) return NOOP
  const number = ++reported
  const startedAt = performance.now()
  const cpuAtStart = process.cpuUsage()
  let last = startedAt
  const laps: string[] = []
  return {
    lap(step) {
      const now = performance.now()
      laps.push(`${step} ${(now - last).toFixed(1)}`)
      last = now
    },
    done(how) {
      const cpu = process.cpuUsage(cpuAtStart)
      agentLog.write(
        `exec ${number} timing (${how}): ${laps.join(', ')}; total ${(performance.now() - startedAt).toFixed(1)} ms, agent cpu ${((cpu.user + cpu.system) / 1000).toFixed(1)} ms`,
      )
    },
  }
}
