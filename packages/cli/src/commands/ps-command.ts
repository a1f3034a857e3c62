import { listNetworks, listVms } from '@vmctl/core'
import { HELP_OPTION, helpLines } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { printTable } from '../print-table.js'
import { UsageError } from '../usage-error.js'
import { networksByVm } from './network-column.js'

export const PS_HELP = `Usage: vmctl ps [--json]

Lists this user's VMs with their state, age and supervisor pid, and the networks each is on with
its address there and the faults on its link (down, partition group, delay, loss).

Options:
${helpLines({ json: { type: 'boolean', help: 'print JSON' }, ...HELP_OPTION })}`

export async function psCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(
    args,
    { json: { type: 'boolean', help: '' }, ...HELP_OPTION },
    'ps',
  )
  if (values.help) {
    console.log(PS_HELP)
    return 0
  }
  if (positionals.length > 0) throw new UsageError(`vmctl ps: unexpected ${JSON.stringify(positionals[0])}`)
  const vms = listVms()
  const networks = networksByVm(listNetworks())
  if (values.json) {
    console.log(
      JSON.stringify(
        vms.map((vm) => ({
          ...(vm.status ?? { name: vm.directory.name, state: 'starting' }),
          networks: networks.get(vm.directory.name)?.map((n) => n.json) ?? [],
        })),
        null,
        2,
      ),
    )
    return 0
  }
  const rows = [['NAME', 'STATE', 'AGE', 'PID', 'ACCEL', 'PORTS', 'NETWORKS']]
  for (const { directory, status } of vms) {
    rows.push([
      directory.name,
      status?.state ?? 'starting',
      status ? age(Date.now() - Date.parse(status.createdAt)) : '-',
      String(status?.pid ?? '-'),
      status?.accel ?? '-',
      Object.entries(status?.ports ?? {})
        .map(([guest, host]) => `${host}->${guest}`)
        .join(',') || '-',
      networks
        .get(directory.name)
        ?.map((n) => n.text)
        .join(' ') || '-',
    ])
  }
  printTable(rows)
  return 0
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 120) return `${s}s`
  if (s < 7200) return `${Math.round(s / 60)}m`
  return `${Math.round(s / 3600)}h`
}
