import { VM } from '@vmctl/core'
import { HELP_OPTION, helpLines, type OptionSpec, port, seconds } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { UsageError } from '../usage-error.js'

const WAIT_OPTIONS: Record<string, OptionSpec> = {
  port: {
    type: 'string',
    short: 'p',
    multiple: true,
    value: 'PORT',
    help: 'a guest TCP port that something must listen on (repeatable: all of them)',
  },
  command: {
    type: 'string',
    short: 'c',
    value: 'CMD',
    help: 'a guest shell command that must succeed (exit 0), tried until it does',
  },
  timeout: { type: 'string', value: 'SECONDS', help: 'give up after this long (default 60)' },
  ...HELP_OPTION,
}

export const WAIT_HELP = `Usage: vmctl wait NAME [--port PORT...] [--command CMD] [--timeout SECONDS]

Waits until something in the running VM NAME listens on each guest TCP port (a server started with
vmctl exec), and until CMD succeeds in it (pg_isready, test -e FILE), then exits 0; past the
timeout it exits 1, naming what does listen, or with the command's last output.

Options:
${helpLines(WAIT_OPTIONS)}`

/** `vmctl wait NAME --port PORT`: vm.waitForPort() for a shell. */
export async function waitCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, WAIT_OPTIONS, 'wait')
  if (values.help) {
    console.log(WAIT_HELP)
    return 0
  }
  const [name, ...extra] = positionals
  if (!name) throw new UsageError('vmctl wait: which VM? usage: vmctl wait NAME --port PORT (see vmctl ps)')
  if (extra.length > 0) throw new UsageError(`vmctl wait: unexpected ${JSON.stringify(extra[0])}`)
  const ports = ((values.port as string[] | undefined) ?? []).map((p) => port(p))
  const command = values.command as string | undefined
  if (ports.length === 0 && !command)
    throw new UsageError('vmctl wait: what for? usage: vmctl wait NAME --port PORT | --command CMD')
  const timeoutMs = values.timeout === undefined ? 60_000 : seconds('--timeout', values.timeout as string)
  const vm = await VM.attach(name)
  try {
    // One deadline for all of them: each waits for what is left of it.
    const deadline = performance.now() + timeoutMs
    const left = () => Math.max(1, Math.round(deadline - performance.now()))
    for (const port of ports) await vm.waitForPort(port, { timeoutMs: left() })
    if (command) await vm.waitForCommand(command, { timeoutMs: left() })
    return 0
  } finally {
    await vm.close()
  }
}
