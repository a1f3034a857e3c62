import os from 'node:os'
import type { InfoResponse } from '../generated/vmctl/agent/v1/agent.js'
import { readProc } from './proc-read.js'

type Address = InfoResponse['addresses'][number]

/**
 * What the kernel's address tables look like, cheaply: every IPv4 address is a LOCAL route of
 * /proc/net/fib_trie (added with the address, even on a link that is down; removed with it), every
 * IPv6 address a line of /proc/net/if_inet6, and the interfaces' names are /proc/net/dev's first
 * column (a renamed link keeps its routes). Three preads cost the guest ~0.4-0.8 ms under TCG where
 * os.networkInterfaces() (a netlink dump through getifaddrs, and an object per address) cost
 * 1.2-6 ms (medians of 300 in one run, loaded host); Node has no netlink socket to be told of
 * changes without native code. undefined when a file is missing or too large to read whole.
 */
function addressTables(): string | undefined {
  const ipv4 = readProc('/proc/net/fib_trie')
  const ipv6 = readProc('/proc/net/if_inet6') ?? '' // a kernel without IPv6 has none
  const devices = readProc('/proc/net/dev')
  if (ipv4 === undefined || devices === undefined) return undefined
  // Only the names: the counters move with every packet.
  let names = ''
  for (const line of devices.split('\n')) {
    const colon = line.indexOf(':')
    if (colon > 0) names += `${line.slice(0, colon).trim()} `
  }
  // Kept and compared whole: readProc bounds the text at 64 KiB (a bigger trie, a guest with
  // thousands of routes, skips the check: undefined). On the host, one run, over the texts' own
  // decoding: this join and compare adds 0.14 us a call for a 1 KiB trie and 7 us for 27 KiB (600
  // routes), a sha1 4 and 29 us, a scan for the LOCAL lines 14 and 113 us; the preads ~0.4-0.8 ms.
  return `${ipv4}\0${ipv6}\0${names}`
}

let kept: { tables: string; addresses: Address[] } | undefined

/**
 * The guest's addresses for info(): os.networkInterfaces() again only when the kernel's tables
 * changed since the last call (a user's `ip addr add`, a DHCP client), else the last answer.
 */
export function guestAddresses(): Address[] {
  const tables = addressTables()
  if (tables !== undefined && kept?.tables === tables) return kept.addresses
  const addresses = Object.entries(os.networkInterfaces()).flatMap(([name, list]) =>
    (list ?? []).map((a) => ({
      interface: name,
      address: a.address,
      prefix: Number(a.cidr?.split('/')[1] ?? 0),
      family: a.family,
    })),
  )
  kept = tables === undefined ? undefined : { tables, addresses }
  return addresses
}
