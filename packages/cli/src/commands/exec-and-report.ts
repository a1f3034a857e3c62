import { constants } from 'node:os'
import type { VM } from '@vmctl/core'
import { envFrom, seconds } from '../cli-options.js'

type Values = Record<string, string | boolean | string[] | undefined>

/** Runs `command` with live output and returns the exit code vmctl should exit with. */
export async function execAndReport(vm: VM, command: string | string[], values: Values): Promise<number> {
  const input = process.stdin.isTTY ? undefined : process.stdin
  const result = await vm.exec(command, {
    env: envFrom(values),
    cwd: (values.cwd as string | undefined) ?? process.cwd(),
    user: values.user as string | undefined,
    timeoutMs: values.timeout !== undefined ? seconds('--timeout', values.timeout as string) : undefined,
    input,
    stdout: process.stdout,
    stderr: process.stderr,
    buffer: false,
    reject: false,
  })
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
