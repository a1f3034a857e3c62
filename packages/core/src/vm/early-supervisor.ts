import type { ChildProcess } from 'node:child_process'

/**
 * A supervisor process started before its VM is known, waiting on its stdin for its VM directory
 * (supervisor/early-launch.ts): `vmctl run` and `vmctl up` start one as their first act
 * (packages/cli/src/early-supervisor.ts) and offer it here; the next VM.up() in this process
 * hands it its VM (start-vm.ts) instead of spawning one. Node's start-up and the supervisor's
 * loading then run beside the CLI's own instead of after its launch preparation.
 */
let offered: ChildProcess | undefined

/** Offers `child` (spawned with `supervisor-main --await-launch`, stdin a pipe) to the next VM.up(). */
export function offerEarlySupervisor(child: ChildProcess): void {
  releaseEarlySupervisor()
  offered = child
}

/** The offered supervisor, if it still waits (alive, its stdin open); once. */
export function takeEarlySupervisor(): ChildProcess | undefined {
  const child = offered
  offered = undefined
  if (!child) return undefined
  if (child.exitCode === null && child.signalCode === null && child.stdin?.writable) return child
  child.stdin?.destroy()
  return undefined
}

/** Lets the offered supervisor go, unused: its stdin ends with nothing written, and it exits. */
export function releaseEarlySupervisor(): void {
  offered?.stdin?.end()
  offered = undefined
}
