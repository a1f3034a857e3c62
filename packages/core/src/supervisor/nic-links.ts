import { networkNetdevId } from '../qemu/qemu-command.js'
import type { QmpClient } from '../qemu/qmp-client.js'
import type { ControlRequest } from './control-protocol.js'

export type LinkRequest = Extract<ControlRequest, { op: 'set-link' }>

/**
 * The carrier of the VM's network NICs (`net.disconnect(vm)`): QMP `set_link` on the NIC's netdev,
 * which takes the virtio-net peer down with it, so the guest sees NO-CARRIER and QEMU passes no
 * frame either way. The supervisor keeps what was asked: a new QEMU (a restart, a start, a snapshot
 * rolled back) starts with every link up, and `reapply` takes the downed ones down again.
 */
export class NicLinks {
  /** NIC index (position in `networks`) → link up. Only NICs someone set. */
  private readonly wanted = new Map<number, boolean>()

  /**
   * Sets a NIC's link; replies `{ ok }` once QEMU applied it. A VM with no QEMU running (stopped)
   * records it for its next start.
   */
  async handle(request: LinkRequest, qmp: QmpClient | undefined): Promise<Record<string, unknown>> {
    try {
      this.wanted.set(request.nic, request.up)
      if (qmp) await setLink(qmp, request.nic, request.up)
      return { reply: request.op, ok: true }
    } catch (error) {
      return { reply: request.op, ok: false, error: (error as Error).message }
    }
  }

  /** After a new QEMU came up: the links that were down go down again. */
  async reapply(
    qmp: QmpClient | undefined,
    log: (format: string, ...args: unknown[]) => void,
  ): Promise<void> {
    if (!qmp) return
    for (const [nic, up] of this.wanted)
      if (!up) await setLink(qmp, nic, false).catch((e: Error) => log('link %d stays up: %s', nic, e.message))
  }
}

function setLink(qmp: QmpClient, nic: number, up: boolean): Promise<unknown> {
  return qmp.execute('set_link', { name: networkNetdevId(nic), up })
}
