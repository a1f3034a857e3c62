import { Metadata } from '@grpc/grpc-js'
import type { AgentClient, ExecResponse } from '@vmctl/agent'

/** How a command the supervisor ran in the guest ended. */
export interface GuestExit {
  exitCode: number
  /** The signal that ended it, '' if none. */
  signal: string
  stderr: string
}

/**
 * One command through the agent's raw client (not a VM handle: the supervisor has none), to its
 * exit status, whatever that is: `argv` run without a shell, or (`shell`, with `argv` empty) a
 * shell line. Rejects when the call fails (deadline, agent gone) or the agent ends it without an
 * exit status. `timeoutMs`: the agent kills the command after that long (0: never). `input`: the
 * command's stdin, sent and then closed, as vm.exec() sends an `input` (none: no stdin pipe).
 */
export function execToExit(
  agent: AgentClient,
  argv: string[],
  deadline: Date,
  { shell = '', timeoutMs = 0, input }: { shell?: string; timeoutMs?: number; input?: Buffer } = {},
): Promise<GuestExit> {
  return new Promise<GuestExit>((resolve, reject) => {
    const stderr: Buffer[] = []
    const call = agent.exec(new Metadata(), { deadline })
    call.on('data', (response: ExecResponse) => {
      const kind = response.kind
      if (kind?.$case === 'stderr') stderr.push(kind.value)
      if (kind?.$case === 'exit')
        resolve({
          exitCode: kind.value.exitCode,
          signal: kind.value.signal,
          stderr: Buffer.concat(stderr).toString(),
        })
    })
    call.on('error', reject)
    call.on('end', () => reject(new Error('the agent ended the command without an exit status')))
    // No pid wanted (as vm.exec(), which the template's warm-up runs this for).
    const stdin = input !== undefined
    const start = { argv, shell, env: {}, cwd: '/', user: '', stdin, timeoutMs, noStarted: true }
    call.write({ kind: { $case: 'start', value: start } })
    if (stdin) {
      if (input.length > 0) call.write({ kind: { $case: 'stdin', value: input } })
      call.write({ kind: { $case: 'stdinEnd', value: true } })
    }
    call.end()
  })
}

/** A shell command in the guest that must succeed: rejects with its exit status and stderr when it does not. */
export async function runShellInGuest(agent: AgentClient, shell: string, budgetMs: number): Promise<void> {
  const exit = await execToExit(agent, [], new Date(Date.now() + budgetMs), { shell, timeoutMs: budgetMs })
  if (exit.exitCode === 0) return
  throw new Error(`exit ${exit.exitCode}${exit.signal ? ` (${exit.signal})` : ''}: ${exit.stderr.trim()}`)
}
