import { listNetworks, observeHost } from '@vmctl/core'
import { HELP_OPTION, helpLines } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { printTable } from '../print-table.js'
import { UsageError } from '../usage-error.js'
import { networksByVm } from './network-column.js'

export const PS_HELP = `Usage: vmctl ps [--json]

Lists every VM of this user with its state, age, supervisor pid and plugged disks, then whatever is
out of place (a VM directory whose supervisor died, a supervisor without its QEMU, a QEMU without
its supervisor, a plugged disk whose file is gone, a disk file nothing references, a template a
crash left half-made, a VM stopped because its QEMU ended without vmctl asking), each with what
\`vmctl gc\` would do about it. Changes nothing.
Each VM's networks show with its address there and the faults on its link (down, partition
group, delay, loss).

Options:
${helpLines({ json: { type: 'boolean', help: 'print JSON ({ vms, findings })' }, ...HELP_OPTION })}`

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
  const { vms, findings } = observeHost()
  const networks = networksByVm(listNetworks())
  if (values.json) {
    const withNetworks = vms.map((vm) => ({
      ...vm,
      networks: networks.get(vm.name)?.map((n) => n.json) ?? [],
    }))
    console.log(JSON.stringify({ vms: withNetworks, findings }, null, 2))
    return 0
  }
  const rows = [['NAME', 'STATE', 'AGE', 'PID', 'ACCEL', 'PORTS', 'DISKS', 'NETWORKS', 'FLAGS']]
  for (const vm of vms) {
    const status = vm.status
    rows.push([
      vm.name,
      // A spare (booted ahead for its process's next VM.up()): `spare` while it boots, `spare (parked)`.
      status?.spare ? `spare${status.spare === 'parked' ? ' (parked)' : ''}` : vm.state,
      status ? age(Date.now() - Date.parse(status.createdAt)) : '-',
      String(status?.pid ?? '-'),
      status?.accel ?? '-',
      Object.entries(status?.ports ?? {})
        .map(([guest, host]) => `${host}->${guest}`)
        .join(',') || '-',
      String(vm.disks.length),
      networks
        .get(vm.name)
        ?.map((n) => n.text)
        .join(' ') || '-',
      vm.problems.join(',') || '-',
    ])
  }
  printTable(rows)
  if (findings.length) {
    console.log(`\n${findings.length} thing(s) out of place (vmctl gc repairs them; --dry-run says how):`)
    for (const finding of findings)
      console.log(`  ${finding.kind}: ${finding.detail}; gc would ${finding.repair}`)
  }
  return 0
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 120) return `${s}s`
  if (s < 7200) return `${Math.round(s / 60)}m`
  return `${Math.round(s / 3600)}h`
}
