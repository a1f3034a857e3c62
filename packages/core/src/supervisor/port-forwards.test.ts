import { describe, expect, test } from 'vitest'
import { forwardedGuestPorts } from '../qemu/qemu-plan.js'
import { parseUsernetForwardRules } from '../qemu/qmp-client.js'
import { addPortForward, PortForwardError } from './port-forwards.js'

type Rule = [host: number, guest: number, protocol?: 'TCP' | 'UDP']

/** `info usernet` as QEMU 7.2 prints it, newest rule first. */
const usernet = (rules: Rule[]) =>
  `Hub -1 (net0):\r\n  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n${rules
    .map(
      ([host, guest, protocol = 'TCP'], i) =>
        `  ${protocol}[HOST_FORWARD]  ${12 + i}       127.0.0.1 ${host}       10.0.2.15  ${guest}     0     0\r\n`,
    )
    .join('')}`

/** A QEMU monitor that keeps hostfwd rules, binding port 0 to `next` and refusing `busy`. */
function fakeMonitor(rules: Rule[], next: number, busy = -1) {
  const asked: string[] = []
  return {
    asked,
    async human(command: string): Promise<string> {
      asked.push(command)
      if (command === 'info usernet') return usernet(rules)
      const [, protocol, host, guest] =
        command.match(/^hostfwd_add net0 (tcp|udp):127\.0\.0\.1:(\d+)-:(\d+)$/) ?? []
      if (Number(host) === busy)
        return `Could not set up host forwarding rule '${protocol}:127.0.0.1:${host}-:${guest}'\r\n`
      rules.unshift([Number(host) || next, Number(guest), protocol === 'udp' ? 'UDP' : 'TCP'])
      return ''
    },
  }
}

describe('addPortForward', () => {
  test('the host port is the new rule’s, also when the guest port has another rule already', async () => {
    const monitor = fakeMonitor([[40000, 8081]], 40001)
    expect(await addPortForward(monitor, {}, { guestPort: 8081 })).toBe(40001)
    expect(monitor.asked).toContain('hostfwd_add net0 tcp:127.0.0.1:0-:8081')
  })

  test('UDP: its own rules, apart from a TCP rule of the same port number', async () => {
    const monitor = fakeMonitor([[40000, 53]], 40002)
    expect(await addPortForward(monitor, { '53': 40000 }, { guestPort: 53, protocol: 'udp' })).toBe(40002)
    expect(monitor.asked).toContain('hostfwd_add net0 udp:127.0.0.1:0-:53')
    expect(await addPortForward(monitor, { '53/udp': 40002 }, { guestPort: 53, protocol: 'udp' })).toBe(40002)
  })

  test('a port forwarded already answers without asking QEMU; another host port for it is refused', async () => {
    const monitor = fakeMonitor([], 40001)
    expect(await addPortForward(monitor, { '8081': 39000 }, { guestPort: 8081 })).toBe(39000)
    expect(await addPortForward(monitor, { '8081': 39000 }, { guestPort: 8081, hostPort: 39000 })).toBe(39000)
    expect(monitor.asked).toEqual([])
    await expect(
      addPortForward(monitor, { '8081': 39000 }, { guestPort: 8081, hostPort: 1234 }),
    ).rejects.toThrow(/guest TCP port 8081 is forwarded from host port 39000 already/)
  })

  test('a host port QEMU cannot bind is PORT_IN_USE; other refusals say what QEMU said', async () => {
    const busy = fakeMonitor([], 40001, 5555)
    const error = await addPortForward(busy, {}, { guestPort: 80, hostPort: 5555 }).catch((e) => e)
    expect(error).toBeInstanceOf(PortForwardError)
    expect((error as PortForwardError).code).toBe('PORT_IN_USE')
    const odd = {
      human: async (c: string) => (c === 'info usernet' ? '' : "unrecognized netdev id 'net0'\r\n"),
    }
    await expect(addPortForward(odd, {}, { guestPort: 80 })).rejects.toThrow(
      /QEMU could not forward guest TCP port 80: unrecognized netdev id 'net0'$/,
    )
  })
})

describe('forwardedGuestPorts and parseUsernetForwardRules', () => {
  test("a QEMU forwards the spec's ports, then those forwarded since, in order", () => {
    expect(
      forwardedGuestPorts(['8080', '22'], {
        '22': 1,
        '8080': 2,
        '9000': 3,
        '443': 4,
        '53/udp': 5,
        '443/udp': 6,
      }),
    ).toEqual(['8080', '22', '53/udp', '443', '443/udp', '9000'])
    expect(forwardedGuestPorts(['8080'], undefined)).toEqual(['8080'])
  })

  test('every rule, TCP and UDP, newest first as QEMU lists them', () => {
    const rules: Rule[] = [
      [40109, 8081],
      [40529, 8081],
      [39855, 22],
      [58418, 53, 'UDP'],
    ]
    expect(parseUsernetForwardRules(usernet(rules))).toEqual([
      { key: '8081', hostPort: 40109 },
      { key: '8081', hostPort: 40529 },
      { key: '22', hostPort: 39855 },
      { key: '53/udp', hostPort: 58418 },
    ])
  })
})
