import { createHash } from 'node:crypto'
import net from 'node:net'
import { resolve } from 'node:path'
import { pollUntil } from '../util/timing.js'

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

/**
 * Runs `task` holding the lock, waiting for it as long as another process holds it (`onWait` is
 * called once, to say so). The holder's death releases the lock, so the wait cannot outlive it.
 */
export async function withLock<T>(name: string, task: () => Promise<T>, onWait?: () => void): Promise<T> {
  const release = await waitForLock(name, 250, onWait)
  try {
    return await task()
  } finally {
    release()
  }
}

/**
 * Takes the lock, trying every `everyMs` for as long as another process holds it (`onWait` is
 * called once, to say so). No time limit: the holder's death releases the lock. Resolves to the
 * release function. An error other than "held" (from the first try) is thrown.
 */
export async function waitForLock(name: string, everyMs: number, onWait?: () => void): Promise<() => void> {
  const release = await tryLock(name)
  if (release) return release
  onWait?.()
  return (await pollUntil(() => tryLock(name), { timeoutMs: Number.POSITIVE_INFINITY, everyMs }))!
}

/**
 * The lock name for `name` in `directory`. Cache entries are named by content, so two caches on
 * one host (two users, a test's own XDG_CACHE_HOME, a CI cache restored elsewhere) hold entries of
 * the same name; abstract socket names are host-wide (per network namespace, not per user), so a
 * lock must name the directory it guards, or one cache's build would hold up another's.
 */
export function lockIn(directory: string, name: string): string {
  return `${name}@${createHash('sha256').update(resolve(directory)).digest('hex').slice(0, 16)}`
}
