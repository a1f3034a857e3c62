import { VmctlError, VmExitedError } from '../errors.js'
import type { VmConnection } from './vm-connection.js'

/** How `vm.stop()` ended the guest. */
export interface StopResult {
  /** The guest did not power off within its bound (or its agent did not answer) and QEMU was killed. */
  forced: boolean
  /** In words: "the guest powered off", "forced: ...", or "it was already stopped". */
  how: string
}

type PowerOp = { op: 'stop' } | { op: 'start' } | { op: 'restart'; hard: boolean }

/** `vm.stop()`: what runs in the guest ends, the supervisor powers it off; the VM stays, stopped. */
export async function stopVm(connection: VmConnection): Promise<StopResult> {
  assertNotGone(connection)
  if (connection.state === 'ready') connection.markStopped('powering-off')
  const reply = await request(connection, { op: 'stop' })
  connection.markStopped('stopped')
  const how = String(reply.how ?? '')
  return { forced: how.startsWith('forced'), how }
}

/** `vm.start()`: the supervisor boots the stopped VM again; resolves when it is ready. */
export async function startStoppedVm(connection: VmConnection): Promise<void> {
  assertNotGone(connection)
  await request(connection, { op: 'start' })
  connection.becameReady(connection.status)
}

/** `vm.restart()`: the guest reboots (`hard`: a reset through QMP); resolves when it is ready again. */
export async function restartVm(connection: VmConnection, hard: boolean): Promise<void> {
  connection.assertUsable()
  connection.markStopped('starting')
  await request(connection, { op: 'restart', hard })
  connection.becameReady(connection.status)
}

function assertNotGone(connection: VmConnection): void {
  if (connection.exited) throw connection.exited
  if (connection.isDestroyed) throw new VmExitedError(connection.name, 'it was destroyed', '')
}

/**
 * Sends `stop`, `start` or `restart` to the supervisor; a refusal or a failure becomes a VmctlError
 * (`STOP_FAILED`, `START_FAILED`, `RESTART_FAILED`) with the supervisor's reason, after the
 * connection took the state the supervisor reports.
 */
async function request(connection: VmConnection, op: PowerOp): Promise<Record<string, unknown>> {
  const reply = await connection.control.request(op)
  if (reply.reply === 'closed')
    throw connection.exited ?? new VmExitedError(connection.name, 'its supervisor exited', '')
  if (reply.ok !== true) {
    await connection.refreshStatus()
    throw new VmctlError(
      `${op.op.toUpperCase()}_FAILED`,
      `${op.op} of VM ${connection.name} failed: ${String(reply.error)}`,
    )
  }
  return reply
}
