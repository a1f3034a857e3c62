import { guestPortKey, type PortProtocol } from '../qemu/guest-port.js'
import { parseUsernetForwardRules, type QmpClient } from '../qemu/qmp-client.js'
import type { ControlRequest } from './control-protocol.js'

export type ForwardRequest = Extract<ControlRequest, { op: 'forward-port' }>

/** A forward QEMU could not set up; `code` says whether the caller chose the cause. */
export class PortForwardError extends Error {
  readonly code: 'PORT_IN_USE' | 'FORWARD_FAILED'
  constructor(code: PortForwardError['code'], message: string) {
    super(message)
    this.code = code
  }
}

/**
 * Forwards a guest TCP or UDP port from the host while the VM runs (`vm.forwardPort()`, `vmctl
 * forward`): a `hostfwd_add` rule on QEMU's user network, on 127.0.0.1 as the ports given at
 * `VM.up()`, from `request.hostPort` or, without one, a port the kernel picks as it binds (no race
 * between VMs). Resolves with the host port. A guest port forwarded already keeps its rule: its
 * host port is the answer, unless another was asked for. The supervisor records the port beside the
 * boot's (qemu-plan.ts), so that every later QEMU of the VM (a start, a snapshot rolled back)
 * forwards it again from the same host port.
 */
export async function addPortForward(
  qmp: Pick<QmpClient, 'human'>,
  ports: Record<string, number>,
  request: Pick<ForwardRequest, 'guestPort' | 'hostPort' | 'protocol'>,
): Promise<number> {
  const { guestPort, hostPort } = request
  const protocol: PortProtocol = request.protocol ?? 'tcp'
  const key = guestPortKey({ port: guestPort, protocol })
  const named = `guest ${protocol.toUpperCase()} port ${guestPort}`
  const current = ports[key]
  if (current !== undefined) {
    if (hostPort && hostPort !== current)
      throw new PortForwardError(
        'FORWARD_FAILED',
        `${named} is forwarded from host port ${current} already; use that one`,
      )
    return current
  }
  // QEMU answers a rule it set up with nothing, and a refused one with a line that says why (a
  // bind that failed names no errno): the host port is told by its rules, read before and after.
  const before = new Set(
    parseUsernetForwardRules(await qmp.human('info usernet')).map((rule) => `${rule.key} ${rule.hostPort}`),
  )
  const answer = (
    await qmp.human(`hostfwd_add net0 ${protocol}:127.0.0.1:${hostPort ?? 0}-:${guestPort}`)
  ).trim()
  if (answer) {
    if (hostPort && /could not set up/i.test(answer))
      throw new PortForwardError(
        'PORT_IN_USE',
        `host ${protocol.toUpperCase()} port ${hostPort} on 127.0.0.1 is taken (or not yours to bind): leave hostPort out and the kernel picks a free one`,
      )
    throw new PortForwardError('FORWARD_FAILED', `QEMU could not forward ${named}: ${answer}`)
  }
  const added = parseUsernetForwardRules(await qmp.human('info usernet')).find(
    (rule) => rule.key === key && !before.has(`${rule.key} ${rule.hostPort}`),
  )
  if (!added) throw new PortForwardError('FORWARD_FAILED', `QEMU lists no rule for ${named} after adding it`)
  return added.hostPort
}
