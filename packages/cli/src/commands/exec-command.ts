import { VM } from '@vmctl/core'
import { EXEC_OPTIONS, HELP_OPTION, helpLines } from '../cli-options.js'
import { guestCommand, parseCommandLine } from '../parse-command-line.js'
import { UsageError } from '../usage-error.js'
import { printVmWarnings } from '../vm-warnings.js'
import { execAndReport } from './exec-and-report.js'

const OPTIONS = { ...EXEC_OPTIONS, ...HELP_OPTION }

export const EXEC_HELP = `Usage: vmctl exec NAME [options] -- COMMAND [ARG...]

Runs COMMAND in the running VM NAME (see vmctl ps) and exits with its exit code.

Options:
${helpLines(OPTIONS)}`

export async function execCommand(args: string[]): Promise<number> {
  const { values, positionals, command } = parseCommandLine(args, OPTIONS, 'exec')
  if (values.help) {
    console.log(EXEC_HELP)
    return 0
  }
  const [name, ...extra] = positionals
  if (!name) throw new UsageError('vmctl exec: which VM? usage: vmctl exec NAME -- COMMAND')
  if (extra.length > 0)
    throw new UsageError(`vmctl exec: unexpected ${JSON.stringify(extra[0])}; put the command after --`)
  if (command.length === 0) throw new UsageError('vmctl exec: no command; usage: vmctl exec NAME -- COMMAND')
  const vm = await VM.attach(name)
  printVmWarnings(vm)
  try {
    return await execAndReport(vm, guestCommand(command), values)
  } finally {
    await vm.close()
  }
}
