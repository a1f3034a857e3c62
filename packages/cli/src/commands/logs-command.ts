import { VM } from '@vmctl/core'
import { HELP_OPTION, helpLines, type OptionSpec } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { UsageError } from '../usage-error.js'

const SOURCES = ['kernel', 'agent', 'console'] as const
type Source = (typeof SOURCES)[number]

const LOGS_OPTIONS: Record<string, OptionSpec> = {
  follow: { type: 'boolean', short: 'f', help: 'keep printing new lines until Ctrl-C or the VM ends' },
  source: {
    type: 'string',
    short: 's',
    multiple: true,
    value: 'kernel|agent|console',
    help: 'only this log (repeatable; default all three)',
  },
  ...HELP_OPTION,
}

export const LOGS_HELP = `Usage: vmctl logs NAME [--follow] [--source kernel|agent|console]

Prints the logs of the running VM NAME, each line after its source: the guest kernel's (dmesg),
the guest agent's, and the serial console's (the boot, a panic).

Options:
${helpLines(LOGS_OPTIONS)}`

/** `vmctl logs NAME`: vm.logs() for a shell, as docker logs. */
export async function logsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, LOGS_OPTIONS, 'logs')
  if (values.help) {
    console.log(LOGS_HELP)
    return 0
  }
  const [name, ...extra] = positionals
  if (!name) throw new UsageError('vmctl logs: which VM? usage: vmctl logs NAME (see vmctl ps)')
  if (extra.length > 0) throw new UsageError(`vmctl logs: unexpected ${JSON.stringify(extra[0])}`)
  const sources = (values.source as string[] | undefined) ?? [...SOURCES]
  for (const source of sources)
    if (!SOURCES.includes(source as Source))
      throw new UsageError(`vmctl logs: --source is kernel, agent or console, not ${JSON.stringify(source)}`)
  // `vmctl logs NAME | head`: a closed stdout ends it quietly.
  process.stdout.on('error', () => process.exit(0))
  const vm = await VM.attach(name)
  try {
    for await (const entry of vm.logs({ follow: values.follow === true, sources: sources as Source[] }))
      process.stdout.write(`${entry.source.padEnd(7)} ${entry.message}\n`)
    return 0
  } finally {
    await vm.close()
  }
}
