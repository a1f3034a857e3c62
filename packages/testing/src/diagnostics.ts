import { firstLineOf, type VM } from '@vmctl/core'

export interface DiagnosticsOptions {
  /** Console lines to show. Default 30. */
  consoleLines?: number
  /** Agent log lines to show. Default 15. */
  agentLines?: number
  /** Give up on the logs after this long (a wedged guest must not hang the report). Default 5 s. */
  timeoutMs?: number
}

/**
 * The tail of the guest console and of the agent's log, as text to append to a test failure: what a
 * reader needs when the command's own output does not explain it (a kernel oops, a module that did
 * not load, the agent restarting).
 */
export async function vmDiagnostics(vm: VM, options: DiagnosticsOptions = {}): Promise<string> {
  const consoleLines = options.consoleLines ?? 30
  const agentLines = options.agentLines ?? 15
  const console: string[] = []
  const agent: string[] = []
  const collect = (async () => {
    for await (const entry of vm.logs({ follow: false, sources: ['console', 'agent'] })) {
      const list = entry.source === 'console' ? console : agent
      list.push(entry.message)
      if (list.length > 4 * Math.max(consoleLines, agentLines)) list.splice(0, list.length / 2)
    }
  })()
  let note = ''
  try {
    const timedOut = await Promise.race([
      collect.then(() => false),
      new Promise<true>((resolve) => setTimeout(() => resolve(true), options.timeoutMs ?? 5_000).unref()),
    ])
    if (timedOut) note = ' (logs cut short: the guest did not answer within the time limit)'
  } catch (error) {
    // A VM that died (or whose QEMU ended unasked): its console tail is in the VmExitedError (or
    // VmStoppedError) the test's own call failed with
    // ("Last console lines"), which is printed above this; printing it here again doubled it.
    const gone = (error as { consoleTail?: string }).consoleTail !== undefined
    note = ` (${firstLineOf(error)})`
    if (gone) return `\n--- VM ${vm.name}: no logs${note}; its last console lines are in the error above ---`
  }
  const block = (title: string, lines: string[], count: number) =>
    `\n--- VM ${vm.name}: ${title}, last ${Math.min(count, lines.length)} lines${note} ---\n${lines.slice(-count).join('\n') || '(empty)'}`
  return `${block('guest console', console, consoleLines)}${block('agent log', agent, agentLines)}`
}

/**
 * `vmDiagnostics`, or one line saying why there are none: for appending to a failed test's error,
 * where a second failure (the logs could not be read) must not replace the first.
 */
export function failureDiagnostics(vm: VM, options: DiagnosticsOptions = {}): Promise<string> {
  return vmDiagnostics(vm, options).catch((error: Error) => `\n(no VM logs: ${error.message})`)
}
