import net from 'node:net'

/**
 * Connects to one of QEMU's listening chardev sockets (the guest's virtio-serial ports), retrying
 * every 10 ms while QEMU has not created it yet. Undefined once `alive` says QEMU is gone.
 */
export async function connectChardev(path: string, alive: () => boolean): Promise<net.Socket | undefined> {
  for (;;) {
    const socket = await new Promise<net.Socket | undefined>((resolve) => {
      const s = net.connect(path)
      s.once('connect', () => resolve(s))
      s.once('error', () => resolve(undefined))
    })
    if (socket || !alive()) return socket
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
