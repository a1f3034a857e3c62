import { VM } from '@vmctl/core'
import { guestPort, HELP_OPTION, helpLines, type OptionSpec, port } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { UsageError } from '../usage-error.js'

const FORWARD_OPTIONS: Record<string, OptionSpec> = {
  'host-port': {
    type: 'string',
    value: 'PORT',
    help: 'the host port on 127.0.0.1 (default: one the kernel picks)',
  },
  ...HELP_OPTION,
}

export const FORWARD_HELP = `Usage: vmctl forward NAME GUEST_PORT[/udp] [--host-port PORT]

Forwards port GUEST_PORT of the running VM NAME (TCP; 53/udp for UDP) from 127.0.0.1 on the host,
and prints the host port: curl "http://127.0.0.1:$(vmctl forward NAME 8080)/". A port forwarded
already (by -p at vmctl up, or before) prints its host port again. The forward lasts as long as
the VM, across a stop and start.

Options:
${helpLines(FORWARD_OPTIONS)}`

/** `vmctl forward NAME GUEST_PORT`: vm.forwardPort() for a shell. */
export async function forwardCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, FORWARD_OPTIONS, 'forward')
  if (values.help) {
    console.log(FORWARD_HELP)
    return 0
  }
  const [name, guest, ...extra] = positionals
  if (!name || !guest)
    throw new UsageError(
      'vmctl forward: usage: vmctl forward NAME GUEST_PORT [--host-port PORT] (see vmctl ps)',
    )
  if (extra.length > 0) throw new UsageError(`vmctl forward: unexpected ${JSON.stringify(extra[0])}`)
  const { port: guestPortNumber, protocol } = guestPort(guest, 'vmctl forward: GUEST_PORT is')
  const hostText = values['host-port'] as string | undefined
  const hostPort = hostText === undefined ? undefined : port(hostText, '--host-port takes')
  const vm = await VM.attach(name)
  try {
    console.log(await vm.forwardPort(guestPortNumber, { protocol, hostPort }))
    return 0
  } finally {
    await vm.close()
  }
}
