import type net from 'node:net'
import { encodeMessage, LineDecoder } from '../supervisor/control-protocol.js'

/**
 * A member VM's carrier on one network, set through its supervisor's control socket (the switch's
 * watch on the VM: the same connection whose end tells the switch the VM is gone). The supervisor
 * does QMP `set_link` on the NIC (supervisor/nic-links.ts), so the guest sees NO-CARRIER. Requests
 * go one at a time: the supervisor answers each with `{ reply: 'set-link' }`, in order.
 */
export class MemberCarrier {
  private readonly waiting: Array<(reply: Record<string, unknown>) => void> = []
  private queue: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly control: net.Socket,
    /** The NIC's position among the VM's networks. */
    private readonly nic: number,
  ) {
    const decoder = new LineDecoder()
    control.setEncoding('utf8')
    control.on('data', (chunk: string) => {
      for (const message of decoder.push(chunk) as Array<Record<string, unknown>>)
        if (message.reply === 'set-link') this.waiting.shift()?.(message)
    })
    control.on('close', () => {
      for (const waiter of this.waiting.splice(0)) waiter({ ok: false, error: 'the VM exited' })
    })
  }

  /** Resolves once QEMU has the link up or down; rejects with the supervisor's refusal. */
  set(up: boolean): Promise<void> {
    const work = this.queue.then(async () => {
      if (this.control.destroyed) throw new Error('the VM exited')
      const reply = await new Promise<Record<string, unknown>>((resolve) => {
        this.waiting.push(resolve)
        this.control.write(encodeMessage({ op: 'set-link', nic: this.nic, up }))
      })
      if (reply.ok !== true)
        throw new Error(`its link could not be set ${up ? 'up' : 'down'}: ${reply.error}`)
    })
    this.queue = work.catch(() => {})
    return work
  }
}
