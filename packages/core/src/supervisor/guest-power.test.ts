import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import { AgentService, LaneServer, MuxSession } from '@vmctl/agent'
import { afterEach, describe, expect, test } from 'vitest'
import { socketPair } from '../test-support/socket-pair.js'
import { sleep } from '../util/timing.js'
import { AgentProxy } from './agent-proxy.js'
import { endGuest } from './guest-power.js'
import type { QemuProcess } from './qemu-process.js'

// The power-off request end to end but for QEMU: the supervisor's proxy, both multiplexers over a
// socket pair standing in for the port, and a lane server with a fake shutdown handler. QEMU is a
// fake that exits when told (the guest powering off) or when killed. The VM tests (stop-start,
// lifecycle) run it against real guests.

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup()
})

function fakeQemu() {
  let exit = () => {}
  const qemu = {
    alive: true,
    exited: new Promise<void>((resolve) => {
      exit = resolve
    }),
    graces: [] as number[],
    abnormal: undefined as string | undefined,
    abnormalExit: () => qemu.abnormal,
    powerOff(afterMs: number) {
      setTimeout(() => qemu.exit(), afterMs)
    },
    exit() {
      qemu.alive = false
      exit()
    },
    async endWithin(graceMs: number, how: string) {
      qemu.graces.push(graceMs)
      const forced = await Promise.race([qemu.exited.then(() => false), sleep(graceMs).then(() => true)])
      if (!forced) return how
      qemu.exit()
      return 'SIGKILL'
    },
  }
  return qemu
}

async function agent(shutdown: (reboot: boolean, answer: () => void) => void, options = { refusing: false }) {
  const dir = mkdtempSync(join(tmpdir(), 'guest-power-'))
  const [hostEnd, guestEnd] = await socketPair(join(dir, 'port'))
  const host = new MuxSession('host')
  const guest = new MuxSession('guest')
  const lane = new LaneServer()
  lane.addService(AgentService, {
    shutdown: (call: { request: { reboot: boolean } }, callback: (e: null, r: object) => void) =>
      shutdown(call.request.reboot, () => callback(null, {})),
  } as never)
  guest.on('channel', (channel: Duplex, service) => {
    channel.on('error', () => {})
    if (!lane.serve(channel, service)) channel.destroy()
  })
  guest.attach(guestEnd)
  host.attach(hostEnd)
  const proxy = new AgentProxy(host)
  const sockets = { agentSocket: join(dir, 'agent.sock'), rawSocket: join(dir, 'raw.sock') }
  await proxy.listen(sockets.agentSocket, sockets.rawSocket)
  if (options.refusing) proxy.refuse()
  cleanups.push(() => {
    proxy.close()
    hostEnd.destroy()
    guestEnd.destroy()
    rmSync(dir, { recursive: true, force: true })
  })
  return { ...sockets, dropPort: () => guestEnd.destroy() }
}

describe('ending a guest: the power-off request', () => {
  test('answered: the guest gets the full grace to power off, and the stop says it powered off', async () => {
    const qemu = fakeQemu()
    const asked: boolean[] = []
    const sockets = await agent((reboot, answer) => {
      asked.push(reboot)
      answer()
      qemu.powerOff(100)
    })
    expect(await endGuest(qemu as unknown as QemuProcess, 'poweroff', sockets)).toBe('the guest powered off')
    expect(asked).toEqual([false])
    expect(qemu.graces).toEqual([15_000])
  })

  test('a guest that goes down before its answer arrives ends the stop at once, not at the deadline', async () => {
    const qemu = fakeQemu()
    const sockets = await agent(() => qemu.powerOff(200))
    const started = Date.now()
    expect(await endGuest(qemu as unknown as QemuProcess, 'reboot', sockets)).toBe('the guest rebooted')
    expect(Date.now() - started).toBeLessThan(2_000)
  })

  test('QEMU that ends for another reason while the request is in flight: the stop says why, not "powered off"', async () => {
    const qemu = fakeQemu()
    const sockets = await agent(() => {
      setTimeout(() => {
        qemu.abnormal = 'the guest kernel panicked (Kernel panic - not syncing: Fatal exception)'
        qemu.exit()
      }, 100)
    })
    const how = await endGuest(qemu as unknown as QemuProcess, 'poweroff', sockets)
    expect(how).toBe('the guest kernel panicked (Kernel panic - not syncing: Fatal exception)')
  })

  test('a request that got no answer within its bound: QEMU is ended then, and the stop says so', async () => {
    const qemu = fakeQemu()
    const sockets = await agent(() => {})
    const how = await endGuest(qemu as unknown as QemuProcess, 'poweroff', sockets, 500)
    expect(how).toBe('forced: the guest agent did not answer the request within 0.5 s (SIGKILL)')
    expect(qemu.graces).toEqual([0])
  })

  test('an answer that comes late, near the end of the bound, still gives the guest the full grace', async () => {
    const qemu = fakeQemu()
    const sockets = await agent((_reboot, answer) => {
      setTimeout(() => {
        answer()
        qemu.powerOff(300)
      }, 700)
    })
    const how = await endGuest(qemu as unknown as QemuProcess, 'poweroff', sockets, 1_000)
    expect(how).toBe('the guest powered off')
    expect(qemu.graces).toEqual([15_000])
  })

  test('a proxy that refuses every call: no grace, and the stop says the agent did not take it', async () => {
    const qemu = fakeQemu()
    let asked = 0
    const sockets = await agent(() => asked++, { refusing: true })
    const how = await endGuest(qemu as unknown as QemuProcess, 'poweroff', sockets, 1_000)
    expect(how).toBe('forced: the guest agent did not take the request (SIGKILL)')
    expect(qemu.graces).toEqual([0])
    expect(asked).toBe(0)
  })

  test('a guest whose agent drops the connection after taking the request gets the short grace, not none', async () => {
    // The port closing under the call (the agent killed by the guest's shutdown) resets the
    // session's channels: the request was taken, so this is 'dropped', not 'refused'.
    const qemu = fakeQemu()
    let drop = () => {}
    const sockets = await agent(() => drop())
    drop = sockets.dropPort
    const how = await endGuest(qemu as unknown as QemuProcess, 'poweroff', sockets, 1_000)
    expect(qemu.graces).toEqual([3_000])
    expect(how).toMatch(/dropped before it answered/)
  })
})
