import { destroyVm, listVms } from '@vmctl/core'
import { HELP_OPTION, helpLines, type OptionSpec } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { UsageError } from '../usage-error.js'

const OPTIONS: Record<string, OptionSpec> = {
  all: { type: 'boolean', short: 'a', help: 'destroy every VM of this user' },
  ...HELP_OPTION,
}

export const DOWN_HELP = `Usage: vmctl down NAME... | --all

Destroys VMs: stops QEMU and removes everything they had on the host.

Options:
${helpLines(OPTIONS)}`

export async function downCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, OPTIONS, 'down')
  if (values.help) {
    console.log(DOWN_HELP)
    return 0
  }
  const names = values.all ? listVms().map((vm) => vm.directory.name) : positionals
  if (names.length === 0 && !values.all)
    throw new UsageError('vmctl down: which VM? usage: vmctl down NAME (see vmctl ps)')
  let failures = 0
  for (const name of names) {
    try {
      await destroyVm(name)
      console.log(`${name} destroyed`)
    } catch (error) {
      if (!values.all && names.length === 1) throw error
      failures++
      process.stderr.write(`vmctl down: ${name}: ${(error as Error).message}\n`)
    }
  }
  return failures > 0 ? 1 : 0
}
