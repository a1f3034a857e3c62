import { credentials, Metadata, status } from '@grpc/grpc-js'
import { AgentClient } from '@vmctl/agent'
import { sleep } from '../util/timing.js'
import type { QemuProcess } from './qemu-process.js'

/** How long a guest gets to power off (sync, then off) before QEMU is ended regardless. */
export const POWER_OFF_GRACE_MS = 15_000
/** How long the agent gets to take the power-off request. */
const REQUEST_TIMEOUT_MS = 5_000

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
  agentSocket: string,
): Promise<string> {
  if (!qemu.alive) return 'QEMU had already exited'
  if (how === 'reset') {
    const qmp = await qemu.connectQmp()
    // Bounded as QMP quit is (qemu-process.ts): a QEMU that does not answer is killed below.
    await Promise.race([qmp.execute('system_reset').catch(() => {}), sleep(2_000)])
    const ended = await qemu.endWithin(2_000, 'reset through QMP (system_reset)')
    return ended === 'SIGKILL' ? 'reset through QMP did not end QEMU: killed (SIGKILL)' : ended
  }
  const asked = await askAgent(qemu, agentSocket, how === 'reboot')
  const ended = await qemu.endWithin(
    asked ? POWER_OFF_GRACE_MS : 0,
    how === 'reboot' ? 'the guest rebooted' : 'the guest powered off',
  )
  if (ended !== 'SIGKILL') return ended
  return asked
    ? `forced: the guest did not power off within ${POWER_OFF_GRACE_MS / 1000} s (SIGKILL)`
    : 'forced: the guest agent did not take the request (SIGKILL)'
}

/**
 * Asks the guest agent to sync and power off (or reboot); false when it did not answer. A
 * connection that fails at once (UNAVAILABLE: seen in a CI run for a stop asked right after a
 * start) is tried again within the same bound, so that a moment's hiccup does not force the stop.
 */
async function askAgent(qemu: QemuProcess, agentSocket: string, reboot: boolean): Promise<boolean> {
  const deadline = Date.now() + REQUEST_TIMEOUT_MS
  for (;;) {
    const answer = await askAgentOnce(agentSocket, reboot, deadline)
    if (answer !== 'unavailable') return answer
    // Gone meanwhile: the request was taken (QEMU's exit says how it ended).
    if (!qemu.alive) return true
    if (Date.now() + 250 >= deadline) return false
    await sleep(250)
  }
}

function askAgentOnce(
  agentSocket: string,
  reboot: boolean,
  deadline: number,
): Promise<boolean | 'unavailable'> {
  const client = new AgentClient(`unix://${agentSocket}`, credentials.createInsecure())
  return new Promise<boolean | 'unavailable'>((resolve) => {
    client.shutdown({ reboot }, new Metadata(), { deadline: new Date(deadline) }, (error) => {
      // The guest may be gone before its answer arrives: an error after the request left is fine,
      // QEMU's exit says whether it worked.
      if (!error) return resolve(true)
      if (error.code === status.UNAVAILABLE) return resolve('unavailable')
      resolve(!/deadline|unavailable/i.test(error.message))
    })
  }).finally(() => client.close())
}
