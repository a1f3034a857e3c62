import { readdirSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'

/** `NAME.PID.partial` and `NAME.PID.staging[.EXT]`: how vmctl names a build before its rename. */
const IN_PROGRESS = /\.(\d+)\.(?:partial|staging)(?:\.[A-Za-z0-9]+)?$/
/**
 * Untouched for this long and its process gone: stale. The age guards against a PID from another
 * PID namespace (a container sharing the cache) that looks dead from here: no build (a template is
 * made within the 3-minute boot timeout) leaves its files untouched this long.
 */
const STALE_AFTER_MS = 10 * 60_000

/**
 * Removes the unfinished builds in `dir` whose process is gone (SIGKILLed or out of power before
 * it renamed or removed them): a 100 MB runtime disk or a ~190 MB template staging directory each.
 * Those of live processes, or touched in the last ten minutes, stay: they may still be building.
 * Returns the names removed.
 */
export function removeStaleBuilds(dir: string, now = Date.now()): string[] {
  let entries: string[]
  try {
    entries = readdirSync(dir)
  } catch {
    return []
  }
  const removed: string[] = []
  for (const entry of entries) {
    const pid = Number(entry.match(IN_PROGRESS)?.[1])
    if (!pid || isAlive(pid) || now - modifiedAt(join(dir, entry)) < STALE_AFTER_MS) continue
    rmSync(join(dir, entry), { recursive: true, force: true })
    removed.push(entry)
  }
  return removed
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function modifiedAt(path: string): number {
  try {
    return statSync(path).mtimeMs
  } catch {
    return Number.POSITIVE_INFINITY
  }
}
