import { setTimeout as sleep } from 'node:timers/promises'
import { CommandWaitTimeoutError, InvalidOptionsError } from '../errors.js'
import { execIn } from './exec.js'
import type { ExecResult } from './exec-result.js'
import type { VmConnection } from './vm-connection.js'
import type { ProcessOptions } from './vm-types.js'
import { waitTimeoutMs } from './wait-for-port.js'

export interface WaitForCommandOptions extends Omit<ProcessOptions, 'timeoutMs' | 'tty'> {
  /** How long to keep trying, in ms. Default 60000. */
  timeoutMs?: number
  /** Between the end of one try and the start of the next, in ms. Default 250. */
  intervalMs?: number
}

/**
 * `vm.waitForCommand(command)`: runs `command` until it exits 0 (testcontainers'
 * `Wait.forSuccessfulCommand`, NixOS's `wait_until_succeeds`), a try at a time, and resolves with
 * that run's result: for a readiness that no port or output line shows (`pg_isready`, a file, a
 * unit's state). Each try is bounded by what is left of the wait. Past `timeoutMs`, a
 * CommandWaitTimeoutError with the last try's exit and output.
 */
export async function waitForCommand(
  connection: VmConnection,
  command: string | string[],
  options: WaitForCommandOptions = {},
): Promise<ExecResult> {
  const { timeoutMs: _, intervalMs = 250, ...execOptions } = options
  const timeoutMs = waitTimeoutMs(options)
  if (!(intervalMs >= 0))
    throw new InvalidOptionsError(`intervalMs is a number of ms >= 0, not ${intervalMs}`)
  const deadline = performance.now() + timeoutMs
  let tries = 0
  /** The last try that ended by itself: what the error shows, rather than one the bound cut short. */
  let lastEnded: ExecResult | undefined
  for (;;) {
    const left = Math.max(1, Math.round(deadline - performance.now()))
    const result = (await execIn(connection, command, {
      ...execOptions,
      timeoutMs: left,
      reject: false,
    })) as ExecResult
    tries++
    if (!result.failed) return result
    if (!result.timedOut) lastEnded = result
    if (performance.now() + intervalMs >= deadline)
      throw new CommandWaitTimeoutError(connection.name, lastEnded ?? result, timeoutMs, tries)
    await sleep(intervalMs)
  }
}
