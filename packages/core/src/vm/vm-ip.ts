import type { InfoResponse } from '@vmctl/agent'
import { VmctlError } from '../errors.js'
import { GUEST_ADDRESS } from '../qemu/qemu-command.js'

/**
 * The guest's IPv4 address on its default NIC (QEMU's user network,
 * the one `ports` forward to), found by its subnet rather than an interface name, which a guest
 * may rename. (Addresses on VM networks: `memberAddressOf`, network/vm-network.ts.)
 */
export function guestIp(name: string, info: InfoResponse): string {
  const ipv4 = info.addresses.filter((a) => a.family === 'IPv4' && a.interface !== 'lo')
  const subnet = GUEST_ADDRESS.split('.').slice(0, 3).join('.')
  const found = ipv4.find((a) => a.address.startsWith(`${subnet}.`)) ?? ipv4[0]
  if (!found)
    throw new VmctlError(
      'NO_ADDRESS',
      `VM ${name} has no IPv4 address on its default network (addresses: ${info.addresses.map((a) => `${a.interface} ${a.address}`).join(', ') || 'none'}); a command in the guest took its interface down or flushed it`,
    )
  return found.address
}
