import net from 'node:net'

/**
 * Two ends of one real Unix socket connection (listening on `path`, then closed): in tests, they
 * stand in for QEMU's chardev and the guest's port.
 */
export async function socketPair(path: string): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(path, resolve))
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
  const hostEnd = net.connect(path)
  const guestEnd = await accepted
  server.close()
  return [hostEnd, guestEnd]
}
