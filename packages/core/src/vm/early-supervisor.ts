import type { ChildProcess } from 'node:child_process'
import { appendFileSync } from 'node:fs'
import { isAlive } from '../supervisor/vm-directory.js'

/**
 * A supervisor process started before its VM is known, waiting on its stdin for its VM directory
 * (supervisor/early-launch.ts): `vmctl run` and `vmctl up` start one as their first act
 * (packages/cli/src/early-supervisor.ts) and offer it here; the next VM.up() in this process
 * hands it its VM (start-vm.ts) instead of spawning one. Node's start-up and the supervisor's
 * loading then run beside the CLI's own instead of after its launch preparation.
 */
let offered: ChildProcess | undefined

/** What the offered supervisor wrote on its stderr before the hand-off (the last of it). */
let earlyStderr = ''
const KEEP_STDERR = 16 * 1024

/**
 * Offers `child` (spawned with `supervisor-main --await-launch`, stdin a pipe, stderr a pipe or
 * ignored) to the next VM.up(). Its stderr is kept until the hand-off: before it, the supervisor
 * has no log, and what Node prints when it dies (a fatal error while loading) goes only there.
 */
export function offerEarlySupervisor(child: ChildProcess): void {
  releaseEarlySupervisor()
  offered = child
  earlyStderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (text: string) => {
    earlyStderr = (earlyStderr + text).slice(-KEEP_STDERR)
  })
  child.stderr?.on('error', () => {})
}

/**
 * The offered supervisor, if it still waits (alive, its stdin open); once. `log` is the VM's
 * supervisor log: what the supervisor wrote on its stderr so far goes there, and what it writes
 * there later too, while this process lives (after the hand-off its own output goes to the log
 * itself: this is what Node writes on fd 2 directly, a fatal error). A supervisor that died
 * before the hand-off leaves its stderr and exit there, and VM.up() spawns another.
 */
export function takeEarlySupervisor(log: string): ChildProcess | undefined {
  const child = offered
  offered = undefined
  if (!child) return undefined
  const append = (text: string) => {
    try {
      appendFileSync(log, text, { mode: 0o600 })
    } catch {} // a VM directory already gone: nothing to tell
  }
  const told = earlyStderr
  earlyStderr = ''
  child.stderr?.removeAllListeners('data')
  // exitCode is set only once this process's event loop has seen the exit: ask the kernel too.
  const waiting = child.exitCode === null && child.signalCode === null && isAlive(child.pid)
  if (waiting && child.stdin?.writable) {
    if (told) append(told)
    child.stderr?.on('data', append)
    return child
  }
  const how = child.signalCode ?? (child.exitCode === null ? 'an exit' : `status ${child.exitCode}`)
  append(
    `an early supervisor (pid ${child.pid}) ended before it was handed its VM (${how}); another is started. Its stderr:\n${told || '(nothing)\n'}`,
  )
  child.stdin?.destroy()
  child.stderr?.destroy()
  return undefined
}

/** The supervisor offered and not yet taken, if any (alive or not). */
export function offeredEarlySupervisor(): ChildProcess | undefined {
  return offered
}

/** Lets the offered supervisor go, unused: its stdin ends with nothing written, and it exits. */
export function releaseEarlySupervisor(): void {
  offered?.stdin?.end()
  offered?.stderr?.destroy()
  offered = undefined
}
