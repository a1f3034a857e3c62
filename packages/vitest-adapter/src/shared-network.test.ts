import { listNetworks, VmNetwork } from '@vmctl/core'
import { describe, expect } from 'vitest'
import { sharedNetwork, test } from './index.js'

// The switch process for real (no VM): the fixture's network is the run's, held by its keeper.
const name = `fixture-net-${process.pid}`
const it = test.extend<{ net: VmNetwork }>({ net: sharedNetwork(name) })

describe('sharedNetwork fixture', () => {
  it('gives every test the network of that name, which the run holds', async ({ net }) => {
    expect(net.name).toBe(name)
    const running = listNetworks().find((n) => n.name === name)
    expect(running?.subnet).toBe(net.subnet)
    expect(process.env.VMCTL_SHARED_KEEPER, 'this run has the shared keeper (global setup)').toBeTruthy()
    // A handle of another user coming and going leaves it: the keeper and the fixture hold it.
    const other = await VmNetwork.create({ name })
    await other.close()
    expect(await net.members()).toEqual([])
  })

  it('is the same handle in the next test', async ({ net }) => {
    expect(listNetworks().filter((n) => n.name === name)).toHaveLength(1)
    expect(await net.members()).toEqual([])
  })
})
