import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { NetworkClient } from '../network/network-protocol.js'
import { VmNetwork } from '../network/vm-network.js'
import { encodeMessage } from '../util/lines.js'
import { pollUntil } from '../util/timing.js'
import { ControlServer } from './control-server.js'

const dir = mkdtempSync(join(tmpdir(), 'vmctl-control-watches-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// The switch process for real and a supervisor's control server for real (no VM): `vmctl run`
// exits once the teardown has begun, and a `vmctl run --network lab:db` right after it must find
// the name db free, not held until the first VM's QEMU is gone.
describe("a supervisor's teardown and its networks", () => {
  test("endWatches ends the switch's watch (the member and its name go), not a client that spoke or holds a lease", async () => {
    await using network = await VmNetwork.create()
    const control = new ControlServer()
    const path = join(dir, 'control.sock')
    await control.listen(path)
    control.on('request', (request, client, reply) => {
      if (request.op === 'attach') control.lease(client)
      reply({ reply: request.op })
    })
    const switchClient = await NetworkClient.connect(network.directory.controlSocket, network.name)
    try {
      await switchClient.request({ op: 'join', member: 'first', hostname: 'db' })
      await switchClient.request({ op: 'bind', member: 'first', vmControl: path, nic: 0 })
      // A caller holding the VM (vmctl run's lease) and one that asked for its status.
      const connect = async (request: object) => {
        const socket = net.connect(path)
        await new Promise((resolve) => socket.once('connect', resolve))
        socket.write(encodeMessage({ ...request, id: '1' }))
        await new Promise((resolve) => socket.once('data', resolve))
        return socket
      }
      const holder = await connect({ op: 'attach', lease: true })
      const asker = await connect({ op: 'status' })
      await expect(switchClient.request({ op: 'join', member: 'second', hostname: 'db' })).rejects.toThrow(
        /the name db is already taken/,
      )

      control.endWatches()
      const freed = await pollUntil(
        async () => {
          try {
            await switchClient.request({ op: 'join', member: 'second', hostname: 'db' })
            return true
          } catch {
            return false
          }
        },
        { timeoutMs: 5_000, everyMs: 20 },
      )
      expect(freed, 'the name db is free once the teardown began').toBe(true)
      expect(holder.destroyed || holder.readableEnded).toBe(false)
      expect(asker.destroyed || asker.readableEnded).toBe(false)
      holder.destroy()
      asker.destroy()
    } finally {
      switchClient.close()
      control.close()
    }
  })
})
