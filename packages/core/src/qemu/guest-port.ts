/** How a guest port is forwarded from the host: TCP (the default) or UDP. */
export type PortProtocol = 'tcp' | 'udp'

/** A guest port as options, configs and the CLI write it: `8080` or `"8080/tcp"` (TCP), `"53/udp"`. */
export type GuestPortSpec = number | `${number}/${PortProtocol}`

export interface GuestPort {
  port: number
  protocol: PortProtocol
}

/**
 * The key a forwarded guest port goes by in a VM's port map (`VmStatus.ports`, the launch spec):
 * `"8080"` for TCP, as before UDP could be forwarded, and `"53/udp"`.
 */
export function guestPortKey({ port, protocol }: GuestPort): string {
  return protocol === 'udp' ? `${port}/udp` : String(port)
}

/** A spec or key read; undefined when it is not a port number from 1 to 65535, with tcp or udp after it. */
export function parseGuestPort(spec: unknown): GuestPort | undefined {
  const match =
    typeof spec === 'number' ? [String(spec), String(spec)] : /^(\d+)(\/(tcp|udp))?$/.exec(String(spec))
  if (!match || (typeof spec !== 'number' && typeof spec !== 'string')) return undefined
  const port = Number(match[1])
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return undefined
  return { port, protocol: match[3] === 'udp' ? 'udp' : 'tcp' }
}
