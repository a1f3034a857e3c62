import { finished } from 'node:stream/promises'
import type { ExecResult, ProcessOptions, TerminalSize, VM } from '@vmctl/core'

/**
 * `vmctl exec -t` and `vmctl run -t` (and `vmctl shell`): the command on a terminal in the guest,
 * as `ssh -t` runs it. From a terminal here, this one goes raw: every key (Ctrl-C, Ctrl-Z, arrows)
 * reaches the guest's terminal, which echoes and interprets it, and a resize here resizes it.
 * The terminal is given back as it was however the command ends. From a pipe, the guest still
 * gets a terminal (of $LINES x $COLUMNS, else 24x80), and the pipe's end is its Ctrl-D.
 */
export async function runOnTerminal(
  vm: VM,
  command: string | string[],
  options: ProcessOptions,
): Promise<ExecResult> {
  const stdin = process.stdin
  const interactive = stdin.isTTY === true
  const size = (): TerminalSize => ({
    rows: process.stdout.rows || Number(process.env.LINES) || 24,
    cols: process.stdout.columns || Number(process.env.COLUMNS) || 80,
  })
  const guest = vm.spawn(command, { ...options, tty: size() })
  const resize = () => guest.resize(size())
  process.stdout.on('resize', resize)
  if (interactive) stdin.setRawMode(true)
  stdin.pipe(guest.stdin!)
  guest.stdout.pipe(process.stdout, { end: false })
  try {
    const result = await guest.wait()
    await finished(guest.stdout).catch(() => {})
    return result
  } finally {
    process.stdout.off('resize', resize)
    stdin.unpipe(guest.stdin!)
    if (interactive) stdin.setRawMode(false)
    // Stop reading: a terminal or pipe that stays open would keep vmctl alive.
    stdin.destroy()
  }
}
