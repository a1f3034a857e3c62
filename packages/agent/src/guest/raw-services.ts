import type { Duplex } from 'node:stream'

/**
 * Byte services on a bare channel, without gRPC: the floor that `pnpm bench` compares file
 * transfers against. "raw-sink" counts what it receives and answers the count when the host ends
 * its side; "raw-source N" sends N zero bytes; "raw-echo" sends back what it receives (the round
 * trip of a small message through the port and the multiplexer, without gRPC: the floor of a call).
 */
export function serveRawChannel(channel: Duplex, service: string): boolean {
  if (service === 'raw-echo') {
    channel.pipe(channel)
    return true
  }
  if (service === 'raw-sink') {
    let bytes = 0
    channel.on('data', (chunk: Buffer) => {
      bytes += chunk.length
    })
    channel.on('end', () => channel.end(`${bytes}\n`))
    return true
  }
  const source = service.match(/^raw-source (\d+)$/)
  if (source) {
    let left = Number(source[1])
    const block = Buffer.alloc(1024 * 1024)
    const pump = () => {
      while (left > 0) {
        const chunk = left >= block.length ? block : block.subarray(0, left)
        left -= chunk.length
        if (!channel.write(chunk)) return void channel.once('drain', pump)
      }
      channel.end()
    }
    channel.resume()
    pump()
    return true
  }
  return false
}
