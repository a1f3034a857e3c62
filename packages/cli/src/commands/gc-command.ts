import { gcHost } from '@vmctl/core'
import { HELP_OPTION, helpLines, type OptionSpec } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { UsageError } from '../usage-error.js'

const OPTIONS: Record<string, OptionSpec> = {
  'dry-run': { type: 'boolean', short: 'n', help: 'say what would be done, do nothing' },
  json: { type: 'boolean', help: 'print JSON' },
  ...HELP_OPTION,
}

export const GC_HELP = `Usage: vmctl gc [--dry-run]

Repairs or removes what \`vmctl ps\` finds out of place, and says what it did: removes the
directories of VMs whose supervisor died, stops supervisors whose QEMU is gone, kills QEMUs whose
supervisor is gone, detaches plugged disks whose file was deleted, deletes disk files in vmctl's
disks directory that nothing references, and removes template staging left by a crash. Healthy
VMs, plugged disks and templates being made are not touched, nor is a VM whose QEMU ended without
vmctl asking (ps flags it stopped-unexpectedly: vmctl start NAME boots it again, vmctl down NAME
removes it).

Options:
${helpLines(OPTIONS)}`

export async function gcCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, OPTIONS, 'gc')
  if (values.help) {
    console.log(GC_HELP)
    return 0
  }
  if (positionals.length > 0) throw new UsageError(`vmctl gc: unexpected ${JSON.stringify(positionals[0])}`)
  const actions = await gcHost({ dryRun: !!values['dry-run'] })
  if (values.json) {
    console.log(JSON.stringify(actions, null, 2))
    return actions.some((a) => a.error) ? 1 : 0
  }
  if (actions.length === 0) console.log('nothing out of place')
  for (const { finding, action, done, error } of actions) {
    const verb = values['dry-run'] ? 'would' : done ? 'did' : 'FAILED to'
    console.log(`${finding.kind}: ${verb} ${action}${error ? `: ${error}` : ''}`)
  }
  return actions.some((a) => a.error) ? 1 : 0
}
