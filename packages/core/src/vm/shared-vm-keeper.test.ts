import net from 'node:net'
import { afterEach, describe, expect, test, vi } from 'vitest'
import { askKeeperToHold, SHARED_KEEPER_ENV } from '../host/shared-keeper-client.js'
import { VmDirectory } from '../supervisor/vm-directory.js'
import { startSharedVmKeeper } from './shared-vm-keeper.js'

// A control socket whose "supervisor" closes every connection at its first request, as one going
// down does: a real socket, no VM needed.
describe('the shared-VM keeper', () => {
  const outer = process.env[SHARED_KEEPER_ENV]
  afterEach(() => {
    if (outer) process.env[SHARED_KEEPER_ENV] = outer
    else delete process.env[SHARED_KEEPER_ENV]
  })

  test('does not count as held a VM whose supervisor closed the connection instead of taking the lease', async () => {
    const directory = new VmDirectory(`keeper-closed-${process.pid}`)
    directory.create()
    const server = net.createServer((socket) => socket.once('data', () => socket.destroy()))
    await new Promise<void>((resolve) => server.listen(directory.controlSocket, resolve))
    const keeper = await startSharedVmKeeper()
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    try {
      await askKeeperToHold(directory.name)
      expect(keeper.held).toEqual([])
      expect(String(stderr.mock.calls.at(-1)?.[0])).toMatch(/could not hold .*did not take the lease/)
    } finally {
      stderr.mockRestore()
      await keeper.close()
      await new Promise((resolve) => server.close(resolve))
      directory.remove()
    }
  })
})
