import { InvalidOptionsError, VmctlError, VmExitedError } from '../errors.js'
import { guestPortKey, type PortProtocol } from '../qemu/guest-port.js'
import type { VmConnection } from './vm-connection.js'

export interface ForwardPortOptions {
  /** `'tcp'` (the default) or `'udp'`. */
  protocol?: PortProtocol
  /** The host port on 127.0.0.1; without it (or 0) the kernel picks a free one as QEMU binds it. */
  hostPort?: number
}

/**
 * `vm.forwardPort(guestPort)`: forwards a guest TCP or UDP port from 127.0.0.1 while the VM runs, as
 * `VM.up({ ports })` does at boot (supervisor/port-forwards.ts), and resolves with the host port;
 * `vm.forwardedPort(guestPort)` knows it from then on, in every handle of the VM. A port forwarded
 * already resolves with its host port. The forward lasts as long as the VM, across a stop and
 * start or a snapshot rolled back, from the same host port.
 */
export async function forwardPort(
  connection: VmConnection,
  guestPort: number,
  options: ForwardPortOptions = {},
): Promise<number> {
  const hostPort = options.hostPort || undefined
  const protocol = options.protocol ?? 'tcp'
  for (const [what, port] of [
    ['guest port', guestPort],
    ['hostPort', hostPort ?? 1],
  ] as const)
    if (!Number.isInteger(port) || port < 1 || port > 65_535)
      throw new InvalidOptionsError(
        `forwardPort: ${what} must be a port number (an integer from 1 to 65535), not ${JSON.stringify(port)}`,
      )
  if (protocol !== 'tcp' && protocol !== 'udp')
    throw new InvalidOptionsError(
      `forwardPort: protocol must be 'tcp' or 'udp', not ${JSON.stringify(protocol)}`,
    )
  connection.assertUsable()
  const key = guestPortKey({ port: guestPort, protocol })
  const known = connection.status.ports[key]
  if (known !== undefined && (hostPort === undefined || hostPort === known)) return known
  const reply = await connection.control.request({ op: 'forward-port', guestPort, protocol, hostPort })
  if (reply.reply === 'closed')
    throw connection.exited ?? new VmExitedError(connection.name, 'its supervisor exited', '')
  if (reply.ok !== true || typeof reply.hostPort !== 'number') {
    const code = typeof reply.code === 'string' ? reply.code : 'FORWARD_FAILED'
    throw new VmctlError(
      code,
      `forwarding guest ${protocol.toUpperCase()} port ${guestPort} of VM ${connection.name} failed: ${String(reply.error)}`,
    )
  }
  connection.notePorts({ [key]: reply.hostPort })
  return reply.hostPort
}

/** `vm.forwardedPort(guestPort)`: the host port of a forward the handle knows, else the error with both ways to make one. */
export function forwardedPort(
  connection: VmConnection,
  guestPort: number,
  protocol: PortProtocol = 'tcp',
): number {
  const ports = connection.status.ports
  const key = guestPortKey({ port: guestPort, protocol })
  const port = ports[key]
  if (port !== undefined) return port
  const known = Object.keys(ports)
  const spec = protocol === 'udp' ? `'${key}'` : key
  const call = protocol === 'udp' ? `${guestPort}, { protocol: 'udp' }` : `${guestPort}`
  throw new InvalidOptionsError(
    `guest ${protocol.toUpperCase()} port ${guestPort} is not forwarded; pass it in VM.up({ ports: [${spec}] }) or call vm.forwardPort(${call})${known.length ? ` (forwarded: ${known.join(', ')})` : ''}`,
  )
}
