import { randomBytes } from 'node:crypto'
import { destroyVm, VM } from '@vmctl/core'
import { HELP_OPTION, helpLines, type OptionSpec, VM_OPTIONS, vmOptionsFrom } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { UsageError } from '../usage-error.js'
import { printVmWarnings } from '../vm-warnings.js'

const OPTIONS: Record<string, OptionSpec> = {
  name: {
    type: 'string',
    short: 'n',
    value: 'NAME',
    help: 'VM name and guest hostname (default: generated)',
  },
  ...VM_OPTIONS,
  ...HELP_OPTION,
}

export const UP_HELP = `Usage: vmctl up [options]

Boots a VM that keeps running after this command exits and prints its name.
Use it with: vmctl exec NAME -- COMMAND, vmctl ps, vmctl down NAME.

Options:
${helpLines(OPTIONS)}`

export async function upCommand(args: string[]): Promise<number> {
  const { values, positionals, command } = parseCommandLine(args, OPTIONS, 'up')
  if (values.help) {
    console.log(UP_HELP)
    return 0
  }
  if (positionals.length > 0 || command.length > 0)
    throw new UsageError('vmctl up: takes no command; use vmctl exec NAME -- COMMAND')
  const options = vmOptionsFrom(values)
  const name = (values.name as string | undefined) ?? options.name ?? `vm-${randomBytes(3).toString('hex')}`
  // A persistent VM has no lease: interrupted while it boots, it would be left running unseen.
  const onSignal = () => {
    void destroyVm(name)
      .catch(() => {})
      .finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let vm: VM
  try {
    vm = await VM.up({ ...options, name, persistent: true })
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  const ports = Object.entries(vm.ports)
  printVmWarnings(vm)
  console.log(vm.name)
  if (ports.length > 0)
    process.stderr.write(`ports: ${ports.map(([g, h]) => `127.0.0.1:${h} -> ${g}`).join(', ')}\n`)
  await vm.close()
  return 0
}
