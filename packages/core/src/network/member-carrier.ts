import type net from 'node:net'
import { encodeMessage, LineDecoder } from '../util/lines.js'
import { sleep } from '../util/timing.js'

/** A supervisor answers set-link once QMP did (milliseconds); one that does not is stuck or gone. */
const SET_LINK_TIMEOUT_MS = 10_000

/**
 * A member VM's carrier on one network, set through its supervisor's control socket (the switch's
 * watch on the VM: the same connection whose end tells the switch the VM is gone). The supervisor
 * does QMP `set_link` on the NIC (supervisor/nic-links.ts), so the guest sees NO-CARRIER. Requests
 * go one at a time: the supervisor answers each with `{ reply: 'set-link' }` (a supervisor too old
 * to know the op, `{ reply: 'error' }`), in order.
 */
export class MemberCarrier {
  /** In request order. A request that timed out keeps its place: its late answer is matched to it. */
  private readonly waiting: Array<(reply: Record<string, unknown>) => void> = []
  private queue: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly control: net.Socket,
    /** The NIC's position among the VM's networks. */
    private readonly nic: number,
    /** The member VM's name, for errors. */
    private readonly member: string,
    private readonly timeoutMs = SET_LINK_TIMEOUT_MS,
  ) {
    const decoder = new LineDecoder()
    control.setEncoding('utf8')
    control.on('data', (chunk: string) => {
      for (const message of decoder.push(chunk) as Array<Record<string, unknown>>)
        if (message.reply === 'set-link' || message.reply === 'error') this.waiting.shift()?.(message)
    })
    control.on('close', () => {
      for (const waiter of this.waiting.splice(0)) waiter({ ok: false, error: 'the VM exited' })
    })
  }

  /** Resolves once QEMU has the link up or down; rejects with the supervisor's refusal, or after a timeout. */
  set(up: boolean): Promise<void> {
    const failed = (why: unknown) =>
      new Error(`VM ${this.member}'s link could not be set ${up ? 'up' : 'down'}: ${why}`)
    const work = this.queue.then(async () => {
      if (this.control.destroyed) throw failed('the VM exited')
      const answered = new AbortController()
      const reply = new Promise<Record<string, unknown>>((resolve) => {
        this.waiting.push(resolve)
        this.control.write(encodeMessage({ op: 'set-link', nic: this.nic, up }))
      }).finally(() => answered.abort())
      const timeout = sleep(this.timeoutMs, answered.signal).then(
        () => ({
          ok: false,
          error: `its supervisor did not answer within ${this.timeoutMs / 1000} s (it may be stuck, or too old for set-link: recreate the VM)`,
        }),
        () => undefined,
      )
      const answer = await Promise.race([reply, timeout.then((t) => t ?? reply)])
      if (answer.ok !== true) throw failed(answer.error ?? answer.message)
    })
    this.queue = work.catch(() => {})
    return work
  }
}
