import { EventEmitter } from 'node:events'
import type { ControlEvent, StopCause, VmState } from './control-protocol.js'

/**
 * Where a VM is in its life, as its supervisor sees it. One value replaces what used to be six
 * flags: `restoring` is a state, `stopping` is a state (the teardown's promise stays only as the
 * thing to await), and "QEMU died while booting or restoring" is a question this value answers.
 *
 * - `booting`: from the supervisor's start to ready: a KVM probe, a template clone or make, a cold
 *   boot. Every wait in it is bounded by the boot deadline.
 * - `snapshotting`, `restoring`: a snapshot being saved, or the VM being rolled back to one (QEMU
 *   replaced on purpose, so its exit while restoring is the restore's failure, not the VM's end).
 * - `powering-off` → `stopped`: `vm.stop()`; the guest powers down, the supervisor, its directory,
 *   disks and host ports stay. `ready` → `stopped`: QEMU ended without being asked (killed from
 *   outside, the guest powered off or panicked); the VM stays the same way, with that cause. `starting`: `vm.start()` or `vm.restart()` on its way back to ready.
 * - `stopping` → `exited`: the teardown (destroy, the last lease gone, QEMU died, a failed boot).
 *   A stopping supervisor starts no QEMU and never removes, makes or locks a template.
 */
export type LifecycleState =
  | 'booting'
  | 'ready'
  | 'snapshotting'
  | 'restoring'
  | 'powering-off'
  | 'stopped'
  | 'starting'
  | 'stopping'
  | 'exited'

/** The allowed transitions: the whole of a VM's life, in one table. Anything else is refused. */
export const TRANSITIONS: Readonly<Record<LifecycleState, readonly LifecycleState[]>> = {
  booting: ['ready', 'stopping'],
  // QEMU ended without being asked (killed from outside, the guest powered off or panicked): the
  // VM stays defined, stopped with that cause, and start() boots it again.
  ready: ['snapshotting', 'restoring', 'powering-off', 'starting', 'stopped', 'stopping'],
  snapshotting: ['ready', 'stopped', 'stopping'],
  restoring: ['ready', 'stopping'],
  'powering-off': ['stopped', 'stopping'],
  stopped: ['starting', 'stopping'],
  // A start that fails leaves the VM stopped (still defined), not destroyed.
  starting: ['ready', 'stopped', 'stopping'],
  stopping: ['exited'],
  exited: [],
}

/** A transition the table does not list: a bug in the supervisor, or a request at the wrong time. */
export class LifecycleError extends Error {
  readonly from: LifecycleState
  readonly to: LifecycleState
  constructor(from: LifecycleState, to: LifecycleState) {
    super(`the VM is ${from}: it cannot go to ${to}`)
    this.from = from
    this.to = to
  }
}

/** The state machine: holds the state, refuses transitions the table does not list, says when it moves. */
export class VmLifecycle extends EventEmitter<{ change: [to: LifecycleState, from: LifecycleState] }> {
  private current: LifecycleState = 'booting'
  private ending: ControlEvent | undefined
  private cause: StopCause | undefined

  get state(): LifecycleState {
    return this.current
  }

  /** True when the state is one of `states`. */
  is(...states: LifecycleState[]): boolean {
    return states.includes(this.current)
  }

  /**
   * Throws, naming the state, unless the VM is ready (a request that needs a running guest). The
   * state as it is, not as clients see it: a snapshot under way is "ready" to them, but busy here.
   */
  assertReady(): void {
    if (!this.is('ready')) throw new Error(`the VM is ${this.current}, not ready`)
  }

  can(to: LifecycleState): boolean {
    return TRANSITIONS[this.current].includes(to)
  }

  /** Moves to `to`, or throws a LifecycleError when the table does not allow it. */
  to(to: LifecycleState): void {
    const from = this.current
    if (!this.can(to)) throw new LifecycleError(from, to)
    this.current = to
    this.emit('change', to, from)
  }

  /** Moves to `stopped`, recording how (`unexpected`: QEMU ended without being asked). */
  toStopped(how: string, unexpected: boolean): void {
    if (!this.can('stopped')) throw new LifecycleError(this.current, 'stopped')
    // Before the move: listeners of 'change' write the status, which has the cause.
    this.cause = { how, unexpected, at: new Date().toISOString() }
    this.to('stopped')
  }

  /** Why the VM is stopped, while it is. */
  get stopCause(): StopCause | undefined {
    return this.is('stopped') ? this.cause : undefined
  }

  /**
   * How the VM ended (its boot failed, QEMU died, a rollback failed, or the teardown's reason),
   * recorded once: the first cause is the one every client hears, attached now or later. Returns
   * false when one was already recorded.
   */
  end(outcome: ControlEvent): boolean {
    if (this.ending) return false
    this.ending = outcome
    return true
  }

  get outcome(): ControlEvent | undefined {
    return this.ending
  }

  /** The teardown started or ended: nothing may start a QEMU or touch a template any more. */
  get goingDown(): boolean {
    return this.is('stopping', 'exited')
  }

  /**
   * In these states the operation under way watches QEMU itself (its deadline rejects when QEMU
   * exits), so an exit is that operation's failure; in `ready` or `snapshotting` it is the VM's end.
   */
  get qemuExitIsAwaited(): boolean {
    return this.is('booting', 'restoring', 'powering-off', 'starting')
  }
}

/**
 * The state clients see in the status. A snapshot being taken or rolled back is still a ready VM
 * from outside (calls wait for it), as it has always been reported.
 */
export function publicState(state: LifecycleState): VmState {
  switch (state) {
    case 'snapshotting':
    case 'restoring':
      return 'ready'
    default:
      return state
  }
}
