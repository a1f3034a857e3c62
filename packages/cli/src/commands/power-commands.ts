import { VM } from '@vmctl/core'
import { HELP_OPTION, helpLines, type OptionSpec } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { UsageError } from '../usage-error.js'

const HARD_OPTION: Record<string, OptionSpec> = {
  hard: { type: 'boolean', help: 'reset the VM through QEMU (the reset button) instead of a guest reboot' },
}

export const STOP_HELP = `Usage: vmctl stop NAME

Powers the VM off (the guest syncs its disks; forced after 15 s). It stays defined: its name,
directory, disks and forwarded host ports are kept until vmctl start or vmctl down. Stopping a
stopped VM does nothing.

Options:
${helpLines(HELP_OPTION)}`

export const START_HELP = `Usage: vmctl start NAME

Boots a stopped VM again from its disks and waits until it is ready.

Options:
${helpLines(HELP_OPTION)}`

export const RESTART_HELP = `Usage: vmctl restart NAME [--hard]

Reboots the VM and waits until it is ready again.

Options:
${helpLines({ ...HARD_OPTION, ...HELP_OPTION })}`

/** `vmctl stop|start|restart NAME`: the same calls as vm.stop(), vm.start(), vm.restart(). */
export function powerCommand(op: 'stop' | 'start' | 'restart'): (args: string[]) => Promise<number> {
  const options = op === 'restart' ? { ...HARD_OPTION, ...HELP_OPTION } : HELP_OPTION
  const help = { stop: STOP_HELP, start: START_HELP, restart: RESTART_HELP }[op]
  return async (args) => {
    const { values, positionals } = parseCommandLine(args, options, op)
    if (values.help) {
      console.log(help)
      return 0
    }
    const [name, ...extra] = positionals
    if (!name) throw new UsageError(`vmctl ${op}: which VM? usage: vmctl ${op} NAME (see vmctl ps)`)
    if (extra.length > 0) throw new UsageError(`vmctl ${op}: unexpected ${JSON.stringify(extra[0])}`)
    const vm = await VM.attach(name)
    try {
      if (op === 'stop') {
        const { how } = await vm.stop()
        console.log(`${name} stopped (${how})`)
      } else if (op === 'start') {
        await vm.start()
        console.log(`${name} ready`)
      } else {
        await vm.restart({ hard: values.hard === true })
        console.log(`${name} ready`)
      }
      return 0
    } finally {
      await vm.close()
    }
  }
}
