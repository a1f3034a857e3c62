import { OutputWaitTimeoutError } from '../errors.js'
import { ExecError, type ExecResult } from './exec-result.js'
import type { GuestProcess } from './guest-process.js'
import type { WaitForOutputOptions } from './vm-types.js'
import { waitTimeoutMs } from './wait-for-port.js'

/** How much of each stream's latest output a pattern is matched against (a line split over chunks). */
const WINDOW = 64 * 1024

/**
 * Resolves with the first text of the process's output that matches `pattern` (a string is found
 * as it is): output from the last 4 KiB before the call on, read by the caller or not. The process
 * ending first rejects at once with an ExecError showing the end of its output, whatever its exit
 * status; `timeoutMs` (default 60 s) with an OutputWaitTimeoutError.
 */
export function waitForOutput(
  process: GuestProcess,
  vmName: string,
  ended: Promise<ExecResult>,
  command: string,
  pattern: string | RegExp,
  options: WaitForOutputOptions,
): Promise<string> {
  const regex =
    typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern
  const timeoutMs = waitTimeoutMs(options)
  const streams = options.stream ? [options.stream] : (['stdout', 'stderr'] as const)
  const text = { ...process.outputTail() }
  return new Promise<string>((resolve, reject) => {
    const match = () => {
      for (const stream of streams) {
        const found = text[stream].match(new RegExp(regex.source, regex.flags.replace('g', '')))
        if (found) return found[0]
      }
      return undefined
    }
    let stopWatching = () => {}
    const timer = setTimeout(() => {
      stopWatching()
      reject(new OutputWaitTimeoutError(vmName, command, regex, timeoutMs, process.outputTail()))
    }, timeoutMs)
    const settle = (found: string) => {
      clearTimeout(timer)
      stopWatching()
      resolve(found)
    }
    const already = match()
    if (already !== undefined) return settle(already)
    stopWatching = process.watchOutput((stream, chunk) => {
      text[stream] = (text[stream] + chunk.toString('utf8')).slice(-WINDOW)
      const found = match()
      if (found !== undefined) settle(found)
    })
    ended.then(
      (result) => {
        clearTimeout(timer)
        stopWatching()
        reject(new ExecError(vmName, result, ` before its output matched ${regex}`))
      },
      (error) => {
        clearTimeout(timer)
        stopWatching()
        reject(error)
      },
    )
  })
}
