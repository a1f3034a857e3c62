import { rmSync } from 'node:fs'
import net from 'node:net'
import { pollUntil } from './timing.js'

/** Listens on a Unix socket at `path`, replacing a stale one left by a dead process. */
export function listen(
  path: string,
  allowHalfOpen: boolean,
  onConnection: (socket: net.Socket) => void,
): Promise<net.Server> {
  rmSync(path, { force: true })
  return new Promise((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen }, onConnection)
    server.once('error', reject)
    server.listen(path, () => resolve(server))
  })
}

function connectOnce(path: string): Promise<net.Socket | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect(path)
    socket.once('connect', () => resolve(socket))
    socket.once('error', () => resolve(undefined))
  })
}

/**
 * Connects to a socket a child process is about to create (QEMU's QMP socket and chardevs, which
 * do not exist for a few ms after spawn), retrying every `everyMs` while `alive()` says the
 * process that will create it still runs. Undefined once it does not.
 */
export async function connectWhenReady(
  path: string,
  alive: () => boolean,
  everyMs = 5,
): Promise<net.Socket | undefined> {
  return pollUntil(() => connectOnce(path), {
    timeoutMs: Number.POSITIVE_INFINITY,
    everyMs,
    stopIf: () => !alive(),
  })
}
