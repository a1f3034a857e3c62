import type { NetworkState } from '@vmctl/core'

/** One VM's place on one network, for `vmctl ps`: as text for the table and as JSON. */
export interface NetworkCell {
  text: string
  json: { network: string; ip: string; names: string[]; faults: string[] }
}

/**
 * VM name → its networks: `NET=ADDRESS`, and the faults on its link in brackets, e.g.
 * `net-1a2b=10.213.0.10[group 1,delay 100ms,loss 5%]`.
 */
export function networksByVm(networks: NetworkState[]): Map<string, NetworkCell[]> {
  const byVm = new Map<string, NetworkCell[]>()
  for (const network of networks) {
    for (const member of network.members) {
      const port = member.port
      const faults = [
        port && !port.connected ? 'down' : '',
        port?.group !== undefined ? `group ${port.group}` : '',
        port?.impair.delayMs ? `delay ${port.impair.delayMs}ms` : '',
        port?.impair.jitterMs ? `jitter ${port.impair.jitterMs}ms` : '',
        port?.impair.lossPercent ? `loss ${port.impair.lossPercent}%` : '',
      ].filter(Boolean)
      const cell: NetworkCell = {
        text: `${network.name}=${member.ip}${faults.length ? `[${faults.join(',')}]` : ''}`,
        json: { network: network.name, ip: member.ip, names: member.names, faults },
      }
      byVm.set(member.member, [...(byVm.get(member.member) ?? []), cell])
    }
  }
  return byVm
}
