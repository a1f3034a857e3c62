import { constants } from 'node:os'
import type { ExecResult, VM } from '@vmctl/core'
import { envFrom, seconds } from '../cli-options.js'
import { runOnTerminal } from './terminal-session.js'

type Values = Record<string, string | boolean | string[] | undefined>

/** Runs `command` with live output and returns the exit code vmctl should exit with. */
export async function execAndReport(vm: VM, command: string | string[], values: Values): Promise<number> {
  if (values.tty) return exitCodeOf(await runOnTerminal(vm, command, commandOptions(vm, values)))
  if (process.stdin.isTTY && isBareShell(command))
    process.stderr.write(
      `vmctl: ${[command].flat()[0]} runs without a terminal and reads nothing from this one; for an interactive shell: vmctl shell ${vm.name}, or -t before the --\n`,
    )
  // Piped stdin goes to the guest command (`cat file | vmctl exec vm -- wc -l`); a terminal does not.
  const input = process.stdin.isTTY ? undefined : process.stdin
  // `vmctl run -- yes | head -1`: a closed stdout ends the command quietly, not with a stack trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(141)
  })
  const result = await vm.exec(command, {
    ...commandOptions(vm, values),
    input,
    stdout: process.stdout,
    stderr: process.stderr,
    buffer: false,
    reject: false,
  })
  // The command is done: stop reading our stdin, or a stdin that never ends would keep vmctl alive.
  input?.destroy()
  return exitCodeOf(result)
}

/** `bash`, `sh -l`...: a shell with no script, which a user typing it means to use interactively. */
export function isBareShell(command: string | string[]): boolean {
  const words = Array.isArray(command) ? command : command.trim().split(/\s+/)
  const name = words[0]?.split('/').at(-1) ?? ''
  return /^(ba|da|z|k|fi|a)?sh$/.test(name) && words.slice(1).every((word) => /^-[il]+$|^--login$/.test(word))
}

/** What the command runs with: the flags, and this directory as the guest sees it. */
function commandOptions(vm: VM, values: Values) {
  return {
    env: envFrom(values),
    // The guest's view of this directory (an image-mode VM sees the host only through its mounts).
    cwd: (values.cwd as string | undefined) ?? vm.guestPathOf(process.cwd()) ?? '/',
    user: values.user as string | undefined,
    timeoutMs: values.timeout !== undefined ? seconds('--timeout', values.timeout as string) : undefined,
  }
}

/**
 * The exit code vmctl exits with for a command's result (its own, 124 for a timeout, 128+N for
 * signal N), after what the guest could not say itself (an OOM kill).
 */
function exitCodeOf(result: ExecResult): number {
  // The guest's own words are a bare "Killed" at most: say what killed it, and the fix.
  for (const kill of result.oomKills) {
    const what = kill.cgroup
      ? `at a memory cgroup's limit (raise its memory.max)`
      : `as the guest ran out of memory (give the VM more with --memory MiB, or memoryMiB in vmctl.toml)`
    process.stderr.write(
      `vmctl: the guest kernel's OOM killer killed ${kill.command} (pid ${kill.pid}) ${what}\n`,
    )
  }
  if (result.timedOut) {
    process.stderr.write(
      `vmctl: command timed out after ${Math.round(result.durationMs / 1000)} s and was killed\n`,
    )
    return 124
  }
  if (result.signal) {
    const number = constants.signals[result.signal as keyof typeof constants.signals] ?? 0
    return 128 + number
  }
  return result.exitCode ?? 1
}
