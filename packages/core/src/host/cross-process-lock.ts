import net from 'node:net'

/**
 * A cross-process mutex that the kernel releases when its holder dies, whatever kills it: binding
 * a Linux abstract Unix socket name succeeds for one process at a time. No lock files to go stale.
 * Resolves to a release function, or undefined when another process holds the lock.
 */
export function tryLock(name: string): Promise<(() => void) | undefined> {
  const server = net.createServer()
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      error.code === 'EADDRINUSE' ? resolve(undefined) : reject(error),
    )
    server.listen(`\0${name}`, () => {
      server.unref()
      resolve(() => server.close())
    })
  })
}
