import { Metadata, type ServiceError, status } from '@grpc/grpc-js'
import type { AgentClient } from '@vmctl/agent'
import { sleep } from '../util/timing.js'
import { agentClient } from '../vm/agent-client.js'
import type { QemuProcess } from './qemu-process.js'

/** How long a guest gets to power off (sync, then off) before QEMU is ended regardless. */
export const POWER_OFF_GRACE_MS = 15_000
/**
 * How long the agent gets to answer the power-off request. The call stays open the whole time: an
 * answer that comes late (a guest busy under TCG) still gives the guest the full grace from then.
 */
const REQUEST_TIMEOUT_MS = 8_000
/**
 * How long QEMU gets to end after the request's connection dropped before an answer came: the
 * agent may have taken it and be going down, its answer lost with the connection.
 */
const DROPPED_GRACE_MS = 3_000

/** Where the supervisor's agent proxy listens: gRPC (HTTP/2) and the call lane. */
export interface AgentSockets {
  agentSocket: string
  rawSocket: string
}

/**
 * What became of the power-off request: answered (or the guest went down meanwhile), its
 * connection dropped after it left, no answer within the bound, refused before it reached the agent.
 */
type Asked = 'taken' | 'dropped' | 'unanswered' | 'refused'

/**
 * Ends a running guest for `vm.stop()` or `vm.restart()`, and says how it ended.
 *
 * - `poweroff`, `reboot`: the guest agent syncs every filesystem, then powers off (or reboots:
 *   under QEMU's -no-reboot both end QEMU, and the supervisor boots a new one for a restart);
 *   QEMU is ended after POWER_OFF_GRACE_MS if the guest has not gone by then. Not QMP's
 *   `system_powerdown`: microvm's ACPI has no power button device the guest kernel acts on
 *   (measured: no PNP0C0C device, no input device in the guest), so it would always end forced,
 *   with the disk's last writes still in the guest's cache.
 * - `reset`: QMP `system_reset`, the hardware reset button: nothing is synced; under -no-reboot
 *   it ends QEMU at once.
 */
export async function endGuest(
  qemu: QemuProcess,
  how: 'poweroff' | 'reboot' | 'reset',
  sockets: AgentSockets,
  requestTimeoutMs = REQUEST_TIMEOUT_MS,
): Promise<string> {
  if (!qemu.alive) return 'QEMU had already exited'
  if (how === 'reset') {
    const qmp = await qemu.connectQmp()
    // Bounded as QMP quit is (qemu-process.ts): a QEMU that does not answer is killed below.
    await Promise.race([qmp.execute('system_reset').catch(() => {}), sleep(2_000)])
    const ended = await qemu.endWithin(2_000, 'reset through QMP (system_reset)')
    return ended === 'SIGKILL' ? 'reset through QMP did not end QEMU: killed (SIGKILL)' : ended
  }
  const asked = await askAgent(qemu, sockets, how === 'reboot', requestTimeoutMs)
  const grace = { taken: POWER_OFF_GRACE_MS, dropped: DROPPED_GRACE_MS, unanswered: 0, refused: 0 }[asked]
  const ended = await qemu.endWithin(grace, how === 'reboot' ? 'the guest rebooted' : 'the guest powered off')
  // A guest that panicked, or a QEMU killed from outside, while the request was in flight did not
  // power off: its disk may not have been synced, and the stop says what happened instead.
  if (ended !== 'SIGKILL') return qemu.abnormalExit() ?? ended
  if (asked === 'taken')
    return `forced: the guest did not power off within ${POWER_OFF_GRACE_MS / 1000} s (SIGKILL)`
  if (asked === 'dropped')
    return `forced: the connection to the guest agent dropped before it answered the request, and the guest did not power off within ${DROPPED_GRACE_MS / 1000} s (SIGKILL)`
  return asked === 'unanswered'
    ? `forced: the guest agent did not answer the request within ${requestTimeoutMs / 1000} s (SIGKILL)`
    : 'forced: the guest agent did not take the request (SIGKILL)'
}

/**
 * Asks the guest agent to sync and power off (or reboot), over the call lane: the agent's answer
 * and its status leave in one write, queued before it acts. (Over HTTP/2 the power-off was often
 * the boot's first gRPC connection, a handshake of its own under TCG, and grpc-js sends the status
 * a few event-loop turns after the message: a guest that powered off in between left the host
 * with "Connection dropped" for a request it had taken.) Each attempt races QEMU's exit, which
 * answers for a guest that went down before its reply arrived. A refusal at once (UNAVAILABLE:
 * the proxy between sessions) is tried again within the same bound.
 */
async function askAgent(
  qemu: QemuProcess,
  sockets: AgentSockets,
  reboot: boolean,
  timeoutMs: number,
): Promise<Asked> {
  const deadline = Date.now() + timeoutMs
  // The lane, or gRPC for an agent without it (older than this supervisor).
  const client = agentClient(sockets)
  try {
    for (;;) {
      const exited = qemu.exited.then(() => 'gone' as const)
      const answer = await Promise.race([askAgentOnce(client, reboot, deadline), exited])
      // Gone meanwhile: the request was taken (QEMU's exit says how it ended).
      if (answer === 'gone' || !qemu.alive) return 'taken'
      if (answer !== 'refused') return answer
      if (Date.now() + 250 >= deadline) return 'refused'
      await sleep(250)
    }
  } finally {
    client.close()
  }
}

function askAgentOnce(client: AgentClient, reboot: boolean, deadline: number): Promise<Asked> {
  return new Promise<Asked>((resolve) => {
    client.shutdown(
      { reboot },
      new Metadata(),
      { deadline: new Date(deadline) },
      (error: ServiceError | null) => {
        if (!error) return resolve('taken')
        if (error.code === status.DEADLINE_EXCEEDED) return resolve('unanswered')
        // A channel that closed or was reset (the port closed under it) after the request left, or a
        // connection dropped mid-answer, may be a guest going down with the request taken; any
        // other UNAVAILABLE never reached the agent.
        const midCall = /closed before the call ended|dropped|channel reset/i.test(
          error.details ?? error.message,
        )
        resolve(error.code === status.UNAVAILABLE && !midCall ? 'refused' : 'dropped')
      },
    )
  })
}
