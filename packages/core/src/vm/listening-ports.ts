/** A TCP socket listening in the guest: its local address and port. */
export interface ListeningPort {
  address: string
  port: number
}

/** The TCP state /proc/net/tcp gives a listening socket (TCP_LISTEN). */
const LISTEN = '0A'

/**
 * The listening sockets in /proc/net/tcp and /proc/net/tcp6 text (both may be given, one after
 * the other): each line `sl local_address rem_address st ...`, the address in hex as the kernel
 * stores it (IPv4 in host byte order, so little-endian here), the port in hex.
 */
export function parseListeningPorts(procNetTcp: string): ListeningPort[] {
  const found: ListeningPort[] = []
  for (const line of procNetTcp.split('\n')) {
    const fields = line.trim().split(/\s+/)
    if (fields[3] !== LISTEN || !fields[1]?.includes(':')) continue
    const [hexAddress = '', hexPort = ''] = fields[1].split(':')
    found.push({ address: decodeAddress(hexAddress), port: Number.parseInt(hexPort, 16) })
  }
  return found
}

function decodeAddress(hex: string): string {
  // Each 32-bit word in host byte order: reversed byte by byte here (x86-64 is little-endian).
  const bytes = (hex.match(/../g) ?? []).map((pair) => Number.parseInt(pair, 16))
  const words: number[][] = []
  for (let i = 0; i < bytes.length; i += 4) words.push(bytes.slice(i, i + 4).reverse())
  const ordered = words.flat()
  if (ordered.length === 4) return ordered.join('.')
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push((((ordered[i] ?? 0) << 8) | (ordered[i + 1] ?? 0)).toString(16))
  return compressZeros(groups)
}

/** RFC 5952's form: the longest run of two or more zero groups as "::". */
function compressZeros(groups: string[]): string {
  let best = { at: -1, length: 1 }
  for (let i = 0; i < groups.length; ) {
    let j = i
    while (groups[j] === '0') j++
    if (j - i > best.length) best = { at: i, length: j - i }
    i = j === i ? i + 1 : j
  }
  if (best.at < 0) return groups.join(':')
  return `${groups.slice(0, best.at).join(':')}::${groups.slice(best.at + best.length).join(':')}`
}

/** `address:port`, an IPv6 address in brackets. */
export function formatListeningPort({ address, port }: ListeningPort): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`
}
