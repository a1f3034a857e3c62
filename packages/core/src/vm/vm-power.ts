import { VmctlError, VmExitedError } from '../errors.js'
import type { SupervisorClient } from '../supervisor/supervisor-client.js'

/** How `vm.stop()` ended the guest. */
export interface StopResult {
  /** The guest did not power off within its bound (or its agent did not answer) and QEMU was killed. */
  forced: boolean
  /** In words: "the guest powered off", "forced: ...", or "it was already stopped". */
  how: string
}

/**
 * Sends `stop`, `start` or `restart` to a VM's supervisor and returns its reply; a refusal or a
 * failure becomes a VmctlError (`STOP_FAILED`, `START_FAILED`, `RESTART_FAILED`) with the
 * supervisor's reason, a supervisor gone a VmExitedError.
 */
export async function powerRequest(
  control: SupervisorClient,
  name: string,
  request: { op: 'stop' } | { op: 'start' } | { op: 'restart'; hard: boolean },
): Promise<Record<string, unknown>> {
  const reply = await control.request(request)
  if (reply.reply === 'closed') throw new VmExitedError(name, 'its supervisor exited', '')
  if (reply.ok !== true)
    throw new VmctlError(
      `${request.op.toUpperCase()}_FAILED`,
      `${request.op} of VM ${name} failed: ${String(reply.error)}`,
    )
  return reply
}

export function stopResult(reply: Record<string, unknown>): StopResult {
  const how = String(reply.how ?? '')
  return { forced: how.startsWith('forced'), how }
}
