import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ensureRuntimeDir } from '@vmctl/core'
import { REQUIRE_ENV, VmsUnavailableError, vmsRequired } from './host-check.js'

/**
 * A multi-line reason (a "Tried:" list, then "Fix: ...") as one line, so that a runner's output
 * shows all of it: list items are joined with "; ".
 */
export function oneLine(reason: string): string {
  let text = ''
  let inList = false
  for (const raw of reason.split('\n')) {
    const line = raw.trim()
    if (!line) continue
    const item = /^[-*]\s+(.*)$/.exec(line)
    if (item) text += `${inList ? ';' : ''} ${item[1]}`
    else text += `${inList ? '.' : ''} ${line}`
    inList = !!item
  }
  return text.trim()
}

/** The line a run prints once when it skips VM tests: the whole reason and the fix. */
export function skipLine(reason: string): string {
  return `vmctl: skipping VM tests, this host cannot run VMs: ${oneLine(reason)} (${REQUIRE_ENV}=1 fails them instead)`
}

/** What a runner shows next to each skipped VM test; the reason itself is in the run's one line. */
export const SHORT_SKIP_NOTE = `vmctl cannot run VMs here (the reason is printed once per run; ${REQUIRE_ENV}=1 fails instead)`

const PREFIX = 'skip-noted-'
let printed = false

/**
 * Prints `skipLine(reason)` to stderr once per test run. The workers of one run are separate
 * processes (vitest forks a process per test file, jest keeps a pool), so "once" is agreed on
 * through a marker file named after the run's main process (`runPid`, with its start time against
 * pid reuse) in vmctl's private runtime directory. Markers of runs that have ended are removed by
 * the next run that skips. Written to the process's own stderr, not through `console`, which
 * runners wrap in per-test headers: the line reaches the terminal as it is.
 */
export function noteSkipOncePerRun(reason: string, runPid: number): void {
  if (printed) return
  printed = true
  try {
    const dir = ensureRuntimeDir()
    for (const name of readdirSync(dir)) {
      if (!name.startsWith(PREFIX)) continue
      const [pid, start] = name.slice(PREFIX.length).split('-')
      if (processStart(Number(pid)) !== start) rmSync(join(dir, name), { force: true })
    }
    writeFileSync(join(dir, `${PREFIX}${runPid}-${processStart(runPid)}`), '', { flag: 'wx' })
  } catch (error) {
    // Another worker of this run has printed it (EEXIST). Any other failure: print rather than hide.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return
  }
  process.stderr.write(`${skipLine(reason)}\n`)
}

/** A process's start time in clock ticks since boot ("gone" when it does not exist). */
function processStart(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? 'unknown'
  } catch {
    return 'gone'
  }
}

/**
 * What an adapter does when the host cannot run VMs, for `reason`: under VMCTL_REQUIRE=1 throws
 * VmsUnavailableError (the tests fail); otherwise prints the run's one skip line (see
 * noteSkipOncePerRun) and returns, and the adapter skips its tests in its runner's own way.
 */
export function skipOrRequire(reason: string, runPid: number): void {
  if (vmsRequired()) throw new VmsUnavailableError(reason)
  noteSkipOncePerRun(reason, runPid)
}
