import { EventEmitter } from 'node:events'
import { Metadata, status } from '@grpc/grpc-js'
import type { AgentClient } from '@vmctl/agent'
import { afterEach, describe, expect, test } from 'vitest'
import { cleanLanes, frontSocket, lane, pullInFlight, unary } from '../test-support/lane-harness.js'
import { pollUntil, sleep } from '../util/timing.js'
import { closeAgentClient } from './agent-client.js'
import { laneAgentClient } from './lane-client.js'

afterEach(cleanLanes)

const cancelled = (reason: string) => ({
  code: status.CANCELLED,
  details: `the call was cancelled: ${reason}`,
})

describe('closing a lane client (its renewal after an agent restart or a stop)', () => {
  test('a call in flight on the kept connection fails CANCELLED with the reason, and the guest sees it cancelled', async () => {
    const { client, seen } = await lane()
    const call = pullInFlight(client, '/forever')
    await call.answered
    closeAgentClient(client, 'the guest agent process died (test)')
    // Before: UNAVAILABLE 'the agent channel closed before the call ended', after a reset.
    expect(await call.ended).toMatchObject(cancelled('the guest agent process died (test)'))
    expect(
      await pollUntil(() => seen.cancelled.includes('pull /forever'), { timeoutMs: 2000, everyMs: 10 }),
    ).toBe(true)
  })

  test('a call still waiting for the greeting is cancelled, not sent on a connection of its own', async () => {
    const { rawSocket, grpc } = await lane()
    const front = await frontSocket(rawSocket, () => 300)
    const client = laneAgentClient({ rawSocket: front.path }, () => grpc)
    try {
      const answer = unary((cb) => client.info({}, new Metadata(), {}, cb)).catch((e) => e)
      closeAgentClient(client, 'the VM went down and came back')
      // Before: the call took a connection of its own and was answered by the old client.
      expect(await answer).toMatchObject(cancelled('the VM went down and came back'))
      // A call made on it afterwards still runs (on a connection of its own), as before.
      const later = await unary<{ hostname: string }>((cb) => client.info({}, new Metadata(), {}, cb))
      expect(later.hostname).toBe('fake-guest')
    } finally {
      front.close()
    }
  })

  test('a call on gRPC (VMCTL_AGENT_TRANSPORT=grpc) is cancelled too', async () => {
    const calls: string[] = []
    const grpc = {
      pull: () => {
        const call = Object.assign(new EventEmitter(), {
          cancel: () => {
            calls.push('cancel')
            call.emit('error', { code: status.CANCELLED, details: 'Cancelled on client' })
            call.emit('status', { code: status.CANCELLED })
          },
        })
        return call
      },
    } as unknown as AgentClient
    const client = laneAgentClient({ rawSocket: '/nonexistent/raw.sock' }, () => grpc)
    process.env.VMCTL_AGENT_TRANSPORT = 'grpc'
    try {
      const call = pullInFlight(client, '/forever')
      closeAgentClient(client, 'test')
      // Before: the call ran on (grpc-js's close leaves started calls alone).
      expect(await Promise.race([call.ended, sleep(2_000).then(() => 'still running')])).toMatchObject({
        code: status.CANCELLED,
      })
      expect(calls).toEqual(['cancel'])
    } finally {
      delete process.env.VMCTL_AGENT_TRANSPORT
    }
  })
})
