import { Metadata } from '@grpc/grpc-js'
import type { InfoResponse } from '@vmctl/agent'
import { afterEach, describe, expect, test } from 'vitest'
import { CALL_RELAY_SERVICE } from '../supervisor/agent-proxy.js'
import { cleanLanes, frontSocket, lane, unary } from '../test-support/lane-harness.js'
import { sleep } from '../util/timing.js'
import { laneAgentClient } from './lane-client.js'

afterEach(cleanLanes)

describe('the kept connection of a lane client', () => {
  test('closed before its greeting: those calls connect on their own, and a later call tries it again', async () => {
    const { rawSocket, grpc, grpcCalls } = await lane()
    // The first kept connection is closed without a byte, as a supervisor that went as it took it does.
    const front = await frontSocket(rawSocket, (relay) => (relay === 0 ? 'drop' : 0))
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
