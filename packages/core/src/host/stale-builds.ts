import { readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'

/** `NAME.PID.partial` and `NAME.PID.staging[.EXT]`: how vmctl names a build before its rename. */
const IN_PROGRESS = /\.(\d+)\.(?:partial|staging)(?:\.[A-Za-z0-9]+)?$/

/**
 * Removes the unfinished builds in `dir` whose process is gone (SIGKILLed or out of power before
 * it renamed or removed them): a 100 MB runtime disk or a ~190 MB template staging directory each.
 * Those of live processes stay: they may still be building. Returns the names removed.
 */
export function removeStaleBuilds(dir: string): string[] {
  let entries: string[]
  try {
    entries = readdirSync(dir)
  } catch {
    return []
  }
  const removed: string[] = []
  for (const entry of entries) {
    const pid = Number(entry.match(IN_PROGRESS)?.[1])
    if (!pid || isAlive(pid)) continue
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
