import type { Accelerator } from '../host/accelerator.js'
import { DEFAULT_BOOT_TIMEOUT_KVM_MS, DEFAULT_BOOT_TIMEOUT_TCG_MS, type LaunchSpec } from '../launch-spec.js'
import { withBootFailureCause } from './boot-failure-cause.js'
import type { ErrorPayload } from './control-protocol.js'
import type { QemuProcess } from './qemu-process.js'

/** A boot (or start, or restore) that failed: `code` is the ErrorPayload code clients turn into errors. */
export class BootFailure extends Error {
  readonly code: 'BOOT_FAILED' | 'BOOT_TIMEOUT'
  constructor(code: 'BOOT_FAILED' | 'BOOT_TIMEOUT', message: string) {
    super(message)
    this.code = code
  }

  /**
   * What clients get in the `failed` event: the message with the line that explains the failure,
   * found in the whole console log (boot-failure-cause.ts), and the console's last lines.
   */
  payload(consoleTail: string, consoleLogPath: string, accel: string, timeoutMs: number): ErrorPayload {
    const message = withBootFailureCause(this.message, consoleLogPath, consoleTail)
    return { code: this.code, message, consoleTail, accel, timeoutMs }
  }
}

/** Any error of a boot, as a BootFailure (BOOT_FAILED unless it is one already). */
export function asBootFailure(error: unknown): BootFailure {
  return error instanceof BootFailure ? error : new BootFailure('BOOT_FAILED', (error as Error).message)
}

export function isBootTimeout(error: unknown): boolean {
  return error instanceof BootFailure && error.code === 'BOOT_TIMEOUT'
}

/** When a phase must be over, and what to say if it is not. */
export interface Deadline {
  /** performance.now() time. */
  at: number
  expired: () => Error
  /** Fail at once when the guest reports on its console that its boot cannot succeed. */
  guestFailures: boolean
}

/** How long this VM's boot may take: its own bootTimeoutMs, or the default for its accelerator. */
export function bootTimeoutMs(spec: LaunchSpec, accel: Accelerator): number {
  return spec.bootTimeoutMs ?? (accel === 'kvm' ? DEFAULT_BOOT_TIMEOUT_KVM_MS : DEFAULT_BOOT_TIMEOUT_TCG_MS)
}

/** The deadline of a boot that has `timeoutMs` from now. */
export function bootDeadline(timeoutMs: number, at = performance.now() + timeoutMs): Deadline {
  return {
    at,
    expired: () =>
      new BootFailure('BOOT_TIMEOUT', `the agent did not answer within ${Math.round(timeoutMs / 1000)} s`),
    guestFailures: true,
  }
}

/** An AbortSignal that fires at the deadline (at least 1 ms from now). */
export function deadlineSignal(deadline: Deadline): AbortSignal {
  return AbortSignal.timeout(Math.max(1, Math.round(deadline.at - performance.now())))
}

/**
 * `work`, unless QEMU exits first, the guest reports a failure on its console (when the deadline
 * asks for that), or the deadline passes: then a BootFailure (or the deadline's own error) saying
 * which. One QEMU, one deadline, no shared mailbox: each call listens to the process's events for
 * as long as its work runs.
 */
export function withinDeadline<T>(
  work: Promise<T>,
  qemu: QemuProcess | undefined,
  deadline: Deadline,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (!qemu?.alive) {
      work.catch(() => {})
      reject(new BootFailure('BOOT_FAILED', qemu ? qemu.exitReason() : 'QEMU is not running'))
      return
    }
    const onExit = (reason: string) => reject(new BootFailure('BOOT_FAILED', reason))
    const onGuestFailure = (message: string) => reject(new BootFailure('BOOT_FAILED', message))
    qemu.once('exit', onExit)
    if (deadline.guestFailures) {
      qemu.on('guest-failure', onGuestFailure)
      // Reported between two waits: no new console output would bring it up again.
      const reported = qemu.guestReportedFailure()
      if (reported) onGuestFailure(reported)
    }
    const timer = setTimeout(() => reject(deadline.expired()), Math.max(0, deadline.at - performance.now()))
    work.then(resolve, reject).finally(() => {
      clearTimeout(timer)
      qemu.off('exit', onExit)
      qemu.off('guest-failure', onGuestFailure)
    })
  })
}
