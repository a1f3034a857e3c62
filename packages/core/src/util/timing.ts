import { setTimeout as sleepFor } from 'node:timers/promises'

/** Waits `ms` milliseconds. The one sleep in core: every wait loop goes through here or `pollUntil`. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return sleepFor(ms, undefined, signal ? { signal } : undefined)
}

export interface PollOptions {
  /** Give up after this long; `pollUntil` then resolves `undefined` (it never throws on timeout). */
  timeoutMs: number
  /** Pause between attempts. */
  everyMs: number
  /** Stop early (resolving `undefined`) once this returns true, e.g. when the process being waited on died. */
  stopIf?: () => boolean
}

/**
 * Calls `attempt` until it returns a value other than `undefined`/`false`, the time runs out, or
 * `stopIf` says stop. Returns that value, or `undefined` when it gave up: the caller knows what
 * it was waiting for and so words the error. An attempt that throws is treated as "not yet".
 */
export async function pollUntil<T>(
  attempt: () => T | undefined | false | Promise<T | undefined | false>,
  options: PollOptions,
): Promise<T | undefined> {
  const deadline = Date.now() + options.timeoutMs
  for (;;) {
    if (options.stopIf?.()) return undefined
    try {
      const value = await attempt()
      if (value !== undefined && value !== false) return value
    } catch {
      // not yet: the next attempt decides
    }
    const left = deadline - Date.now()
    if (left <= 0) return undefined
    await sleep(Math.min(options.everyMs, left))
  }
}
