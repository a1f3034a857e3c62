import { VM } from '@vmctl/core'
import { EXEC_OPTIONS, HELP_OPTION, helpLines } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { UsageError } from '../usage-error.js'
import { printVmWarnings } from '../vm-warnings.js'
import { execAndReport } from './exec-and-report.js'

const { tty: _, ...SHELL_OPTIONS } = { ...EXEC_OPTIONS, ...HELP_OPTION }

export const SHELL_HELP = `Usage: vmctl shell NAME [options]

An interactive login shell in the running VM NAME (bash, else sh), on a terminal of this one's size:
vmctl exec -t NAME -- bash -l. Exit it (exit, Ctrl-D) to come back; the VM keeps running.

Options:
${helpLines(SHELL_OPTIONS)}`

/** The guest's bash as a login shell, or its sh where it has none (a busybox root). */
const LOGIN_SHELL = 'if command -v bash >/dev/null; then exec bash -l; else exec sh -l; fi'

/** `vmctl shell NAME`: a shell in a running VM, as `docker exec -it NAME bash`. */
export async function shellCommand(args: string[]): Promise<number> {
  const { values, positionals, command } = parseCommandLine(args, SHELL_OPTIONS, 'shell')
  if (values.help) {
    console.log(SHELL_HELP)
    return 0
  }
  const [name, ...extra] = [...positionals, ...command]
  if (!name) throw new UsageError('vmctl shell: which VM? usage: vmctl shell NAME (see vmctl ps)')
  if (extra.length > 0)
    throw new UsageError(
      `vmctl shell: unexpected ${JSON.stringify(extra[0])}; to run a command: vmctl exec -t ${name} -- COMMAND`,
    )
  const vm = await VM.attach(name)
  printVmWarnings(vm)
  try {
    return await execAndReport(vm, LOGIN_SHELL, { ...values, tty: true })
  } finally {
    await vm.close()
  }
}
