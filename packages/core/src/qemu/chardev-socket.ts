import net from 'node:net'
import { pollUntil } from '../util/timing.js'

/**
 * Connects to one of QEMU's listening chardev sockets (the guest's virtio-serial ports), retrying
 * every 10 ms while QEMU has not created it yet. Undefined once `alive` says QEMU is gone.
 */
export function connectChardev(path: string, alive: () => boolean): Promise<net.Socket | undefined> {
  const attempt = () =>
    new Promise<net.Socket | undefined>((resolve) => {
      const s = net.connect(path)
      s.once('connect', () => resolve(s))
      s.once('error', () => resolve(undefined))
    })
  // No time limit of its own: the caller's boot deadline ends QEMU, and `alive` then stops this.
  return pollUntil(attempt, { timeoutMs: Number.POSITIVE_INFINITY, everyMs: 10, stopIf: () => !alive() })
}
