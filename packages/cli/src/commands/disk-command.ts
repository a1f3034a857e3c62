import { disksDir, listDisks, VM, VmDisk } from '@vmctl/core'
import { HELP_OPTION, helpLines, type OptionSpec } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { megabytes, printTable } from '../print-table.js'
import { UsageError } from '../usage-error.js'

const OPTIONS: Record<string, OptionSpec> = {
  size: { type: 'string', value: 'MiB', help: 'create: the disk size in MiB' },
  format: { type: 'string', value: 'FORMAT', help: 'create: qcow2 (default) or raw' },
  path: { type: 'string', value: 'PATH', help: 'create: make the file here instead of the disks directory' },
  'read-only': { type: 'boolean', help: 'attach: read-only, in the guest too' },
  serial: { type: 'string', value: 'SERIAL', help: 'attach: the serial (names /dev/disk/by-id/…)' },
  force: { type: 'boolean', help: 'detach: even when mounted in the guest' },
  json: { type: 'boolean', help: 'ls, attach: print JSON' },
  ...HELP_OPTION,
}

export const DISK_HELP = `Usage: vmctl disk create [NAME] --size MiB [--format qcow2|raw] [--path PATH]
       vmctl disk attach VM DISK [--read-only] [--serial SERIAL]
       vmctl disk detach VM DISK [--force]
       vmctl disk ls [--json]
       vmctl disk rm DISK

Disks to plug into running VMs. DISK is a disk's name in vmctl's disks directory or a file's path.
create makes a disk that stays until \`vmctl disk rm\` (in ${disksDir()} unless --path); attach
plugs it into a running VM and prints where the guest has it once the guest sees it; detach
unplugs it once the guest has let go (a disk mounted in the guest is refused without --force).

Options:
${helpLines(OPTIONS)}`

export async function diskCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, OPTIONS, 'disk')
  if (values.help) {
    console.log(DISK_HELP)
    return 0
  }
  const [action, ...rest] = positionals
  const expect = (count: number, usage: string) => {
    if (rest.length !== count) throw new UsageError(`usage: vmctl disk ${usage} (see vmctl disk --help)`)
  }
  switch (action) {
    case 'create': {
      if (rest.length > 1) throw new UsageError('usage: vmctl disk create [NAME] --size MiB')
      const sizeMiB = Number(values.size)
      if (!values.size || !Number.isInteger(sizeMiB) || sizeMiB < 1)
        throw new UsageError(
          `vmctl disk create: --size must be a whole number of MiB, not ${JSON.stringify(values.size)}`,
        )
      const format = (values.format as string | undefined) ?? 'qcow2'
      if (format !== 'qcow2' && format !== 'raw')
        throw new UsageError(`vmctl disk create: --format is qcow2 or raw, not ${JSON.stringify(format)}`)
      const disk = await VmDisk.create({
        name: rest[0],
        path: values.path as string | undefined,
        sizeMiB,
        format,
        persistent: true,
      })
      console.log(disk.path)
      return 0
    }
    case 'attach': {
      expect(2, 'attach VM DISK')
      const vm = await VM.attach(rest[0]!)
      try {
        const attached = await vm.attachDisk(VmDisk.open(rest[1]!), {
          readOnly: !!values['read-only'],
          serial: values.serial as string | undefined,
        })
        if (values.json) console.log(JSON.stringify(attached, null, 2))
        else
          console.log(
            `${attached.byIdPath} (${attached.devicePath}${attached.readOnly ? ', read-only' : ''})`,
          )
      } finally {
        await vm.close()
      }
      return 0
    }
    case 'detach': {
      expect(2, 'detach VM DISK')
      const vm = await VM.attach(rest[0]!)
      try {
        await vm.detachDisk(diskPath(rest[1]!), { force: !!values.force })
        console.log(`${rest[1]} detached from ${rest[0]}`)
      } finally {
        await vm.close()
      }
      return 0
    }
    case 'ls': {
      expect(0, 'ls')
      const disks = listDisks()
      if (values.json) {
        console.log(JSON.stringify(disks, null, 2))
        return 0
      }
      const rows = [['NAME', 'FORMAT', 'SIZE', 'ON DISK', 'ATTACHED TO', 'PATH']]
      for (const d of disks)
        rows.push([
          d.name ?? '-',
          d.format,
          d.sizeMiB ? `${d.sizeMiB} MiB` : '-',
          megabytes(d.bytesOnDisk),
          d.attachedTo.map((a) => `${a.vm}${a.readOnly ? ' (ro)' : ''}`).join(',') || '-',
          d.path,
        ])
      printTable(rows)
      return 0
    }
    case 'rm': {
      expect(1, 'rm DISK')
      const disk = VmDisk.open(rest[0]!)
      await disk.delete()
      console.log(`${disk.path} deleted`)
      return 0
    }
    default:
      throw new UsageError(
        `vmctl disk: ${action ? `unknown action ${JSON.stringify(action)}` : 'which action?'}; actions: create, attach, detach, ls, rm`,
      )
  }
}

/** A name in the disks directory or a path; a detached disk's file may be gone, so no open(). */
function diskPath(disk: string): string {
  try {
    return VmDisk.open(disk).path
  } catch {
    return disk
  }
}
