import { existsSync } from 'node:fs'
import { describe, expect, test } from 'vitest'
import { askKeeperToHold, SHARED_KEEPER_ENV } from '../host/shared-keeper-client.js'
import { isAlive } from '../supervisor/vm-directory.js'
import { pollUntil } from '../util/timing.js'
import { startSharedVmKeeper } from '../vm/shared-vm-keeper.js'
import { listNetworks } from './network-directory.js'
import { VmNetwork } from './vm-network.js'

// The switch process for real (no VM needed): shared by name, ended with its last handle.
describe('network: a switch process per network, held by leases', () => {
  test('two handles of one name share it; it ends with the last, directory and all', async () => {
    const name = `lifetime-${process.pid}`
    const first = await VmNetwork.create({ name })
    const second = await VmNetwork.create({ name })
    const other = await VmNetwork.create()
    try {
      expect(second.subnet).toBe(first.subnet)
      expect(other.subnet).not.toBe(first.subnet)
      const state = listNetworks().find((n) => n.name === name)
      expect(state && isAlive(state.pid)).toBe(true)
      await first.close()
      await expect(second.members()).resolves.toEqual([])
      await second.close()
      const gone = await pollUntil(() => !isAlive(state!.pid) && !existsSync(first.directory.path), {
        timeoutMs: 10_000,
        everyMs: 50,
      })
      expect(gone).toBe(true)
    } finally {
      await Promise.all([first.close(), second.close(), other.close()])
    }
  })

  test("VmNetwork.shared(): the run's keeper holds it past its last handle, and lets go at the run's end", async () => {
    const name = `kept-${process.pid}`
    const outer = process.env[SHARED_KEEPER_ENV] // this run's own keeper: set aside for one of ours
    const keeper = await startSharedVmKeeper()
    try {
      const net = await VmNetwork.shared(name)
      expect(keeper.heldNetworks).toEqual([name])
      const state = () => listNetworks().find((n) => n.name === name)
      const pid = state()!.pid
      expect(state()?.leases).toBe(2) // the handle and the keeper
      await net.close()
      const kept = await pollUntil(() => state()?.leases === 1, { timeoutMs: 10_000, everyMs: 50 })
      expect(kept, 'the keeper alone holds it, and it runs').toBe(true)
      await keeper.close()
      const gone = await pollUntil(() => !isAlive(pid) && !existsSync(net.directory.path), {
        timeoutMs: 10_000,
        everyMs: 50,
      })
      expect(gone, 'the switch ended with the keeper').toBe(true)
    } finally {
      await keeper.close()
      if (outer) process.env[SHARED_KEEPER_ENV] = outer
    }
  })

  test('two workers asking the keeper for one network at once: one lease, gone at the end of the run', async () => {
    const name = `kept-twice-${process.pid}`
    const outer = process.env[SHARED_KEEPER_ENV]
    const keeper = await startSharedVmKeeper()
    try {
      const net = await VmNetwork.create({ name })
      const state = () => listNetworks().find((n) => n.name === name)
      const pid = state()!.pid
      await Promise.all([askKeeperToHold(name, 'network'), askKeeperToHold(name, 'network')])
      expect(state()?.leases).toBe(2) // the handle and the keeper, once
      await net.close()
      await keeper.close()
      const gone = await pollUntil(() => !isAlive(pid), { timeoutMs: 10_000, everyMs: 50 })
      expect(gone, 'the switch ended with the keeper').toBe(true)
    } finally {
      await keeper.close()
      if (outer) process.env[SHARED_KEEPER_ENV] = outer
    }
  })

  test('faults on a VM that is not a member, and bad impairments, are refused with the cause', async () => {
    await using net = await VmNetwork.create()
    await expect(net.partition(['nobody'], [])).rejects.toThrow(/nobody is not a member of network/)
    await expect(net.impair('x', { lossPercent: 120 })).rejects.toThrow(/lossPercent=120 is not valid/)
    await expect(VmNetwork.create({ name: 'no spaces' })).rejects.toThrow(
      /network name "no spaces" is not valid/,
    )
  })
})
