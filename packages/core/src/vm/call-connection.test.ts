import { rmSync } from 'node:fs'
import net from 'node:net'
import { Metadata } from '@grpc/grpc-js'
import type { InfoResponse } from '@vmctl/agent'
import { afterEach, describe, expect, test } from 'vitest'
import { CALL_RELAY_SERVICE } from '../supervisor/agent-proxy.js'
import { cleanLanes, lane, unary } from '../test-support/lane-harness.js'
import { sleep } from '../util/timing.js'
import { laneAgentClient } from './lane-client.js'

afterEach(cleanLanes)

/**
 * A socket in front of the supervisor's raw socket that closes its first `rpc-relay` connection
 * without a byte (as a supervisor that went as it took it does), and passes everything else on.
 * `lines`: the first line of every connection, in order.
 */
async function flakyFront(rawSocket: string) {
  const path = `${rawSocket}.front`
  const lines: string[] = []
  let relays = 0
  const server = net.createServer((socket) => {
    let head = Buffer.alloc(0)
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk])
      const newline = head.indexOf(0x0a)
      if (newline < 0) return
      socket.off('data', onData)
      const line = head.subarray(0, newline).toString()
      lines.push(line)
      if (line === CALL_RELAY_SERVICE && relays++ === 0) return void socket.destroy()
      const back = net.connect(rawSocket)
      back.write(head)
      socket.pipe(back).pipe(socket)
      socket.on('error', () => back.destroy())
      back.on('error', () => socket.destroy())
      socket.on('close', () => back.destroy())
      back.on('close', () => socket.destroy())
    }
    socket.on('data', onData)
  })
  await new Promise<void>((resolve) => server.listen(path, resolve))
  return {
    path,
    lines,
    close: () => {
      server.close()
      rmSync(path, { force: true })
    },
  }
}

describe('the kept connection of a lane client', () => {
  test('closed before its greeting: those calls connect on their own, and a later call tries it again', async () => {
    const { rawSocket, grpc, grpcCalls } = await lane()
    const front = await flakyFront(rawSocket)
    const client = laneAgentClient({ rawSocket: front.path }, () => grpc)
    try {
      const info = () => unary<InfoResponse>((cb) => client.info({}, new Metadata(), {}, cb))
      const call = 'rpc /vmctl.agent.v1.Agent/Info'
      expect((await info()).hostname).toBe('fake-guest')
      expect(front.lines).toEqual([CALL_RELAY_SERVICE, call])
      // Right after, calls do not wait for another connection that may be closed the same way.
      await info()
      expect(front.lines).toEqual([CALL_RELAY_SERVICE, call, call])
      await sleep(1_100)
      // Then the kept connection again (before: every call on its own connection, for good).
      expect((await info()).hostname).toBe('fake-guest')
      await info()
      expect(front.lines).toEqual([CALL_RELAY_SERVICE, call, call, CALL_RELAY_SERVICE])
      expect(grpcCalls).toEqual([])
    } finally {
      client.close()
      front.close()
    }
  })
})
