import createDebug from 'debug'

/** `DEBUG=vmctl*` shows everything; quiet by default. */
export function logger(namespace: string, vmName?: string): createDebug.Debugger {
  const log = createDebug(`vmctl:${namespace}`)
  if (!vmName) return log
  return Object.assign(
    (format: unknown, ...args: unknown[]) => log(`[${vmName}] ${String(format)}`, ...args),
    log,
  )
}
