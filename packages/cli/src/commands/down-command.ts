import { destroyVm, gcHost, listVms } from '@vmctl/core'
import { HELP_OPTION, helpLines, type OptionSpec } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { UsageError } from '../usage-error.js'

const OPTIONS: Record<string, OptionSpec> = {
  all: { type: 'boolean', short: 'a', help: 'destroy every VM of this user' },
  ...HELP_OPTION,
}

export const DOWN_HELP = `Usage: vmctl down NAME... | --all

Destroys VMs: stops QEMU and removes everything they had on the host. With --all, also what is
left of VMs that died (a directory whose supervisor is gone, a QEMU without its supervisor), each
named with what was found, as \`vmctl gc\` does.

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
  if (values.all) {
    // Dead VMs were once swept by listVms() without a word; now they are named, as gc names them.
    const kinds = ['dead-supervisor', 'qemu-without-supervisor', 'supervisor-without-qemu'] as const
    for (const { finding, action, error } of await gcHost({ kinds: [...kinds] })) {
      if (error) failures++
      const line = `${finding.subject}: ${error ? `FAILED to ${action}: ${error}` : `did ${action} (${finding.kind}: ${finding.detail})`}`
      ;(error ? process.stderr : process.stdout).write(`${line}\n`)
    }
  }
  return failures > 0 ? 1 : 0
}
