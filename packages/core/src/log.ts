import { createRequire } from 'node:module'
import type createDebug from 'debug'

/** A namespace's log: a printf-like function, and whether it prints at all. */
export type Logger = ((format: unknown, ...args: unknown[]) => void) & { enabled: boolean }

const quiet: Logger = Object.assign(() => {}, { enabled: false })

let debug: typeof createDebug | undefined

/**
 * `DEBUG=vmctl*` shows everything; quiet by default. The `debug` package is loaded only when DEBUG is
 * set (it reads nothing else): every `vmctl` command and every VM's supervisor loads this module,
 * and `debug` with its colour detection was ~10 ms of CPU of their start-up, compiled or not.
 */
export function logger(namespace: string, vmName?: string): Logger {
  if (!process.env.DEBUG) return quiet
  debug ??= createRequire(import.meta.url)('debug') as typeof createDebug
  const log = debug(`vmctl:${namespace}`)
  if (!vmName) return log
  return Object.assign(
    (format: unknown, ...args: unknown[]) => log(`[${vmName}] ${String(format)}`, ...args),
    log,
  )
}
