import { Metadata, status } from '@grpc/grpc-js'
import { type AgentClient, InfoResponse } from '@vmctl/agent'
import { afterEach, describe, expect, test } from 'vitest'
import { CALL_RELAY_SERVICE } from '../supervisor/agent-proxy.js'
import { cleanLanes, frontSocket, lane, pullInFlight, unary } from '../test-support/lane-harness.js'
import { pollUntil } from '../util/timing.js'
import { laneAgentClient } from './lane-client.js'

// A call whose channel the supervisor's session resets under it (the guest agent restarted, the
// port closed: host.resetPeer), without a VM (lane-harness.ts): the call fails with an error that
// says what happened, the guest's handler sees it cancelled, and the client's next call works.
// Both ways a call reaches the supervisor: on the client's kept connection (spliced onto the port's
// session, channel-splice.ts), and on a connection of its own (a front socket that closes every
// kept connection makes the client connect per call: call-connection.ts).

afterEach(cleanLanes)

const RESET = 'the guest agent restarted (test)'
const INFO = 'rpc /vmctl.agent.v1.Agent/Info'
const PULL = 'rpc /vmctl.agent.v1.Agent/Pull'

/**
 * The harness's lane on a `connection` of the kind asked for; with `holdFirstInfo`, info() holds the
 * first call (for a reset under it). Later calls are answered.
 */
async function resettableLane(connection: 'kept' | 'own', holdFirstInfo: boolean) {
  const held: Array<{ on: (event: string, listener: () => void) => void }> = []
  const heldCancelled: boolean[] = []
  const harness = await lane({
    handlers: {
      info: (call, callback) => {
        if (!holdFirstInfo || held.length > 0)
          return callback(null, InfoResponse.fromPartial({ hostname: 'after the reset' }))
        held.push(call)
        call.on('cancelled', () => heldCancelled.push(true))
      },
    },
  })
  const front = connection === 'own' ? await frontSocket(harness.rawSocket, () => 'drop') : undefined
  const client = front ? laneAgentClient({ rawSocket: front.path }, () => harness.grpc) : harness.client
  return { ...harness, client, held, heldCancelled, front }
}

const info = (client: AgentClient) => unary<InfoResponse>((cb) => client.info({}, new Metadata(), {}, cb))

describe.each([
  { connection: 'kept', over: "the client's kept connection" },
  { connection: 'own', over: 'a connection of its own' },
] as const)('a lane call reset under it, over $over', ({ connection }) => {
  test('waiting for its answer: it fails UNAVAILABLE with the reason, the guest sees it cancelled, the next call works', async () => {
    const { client, host, held, heldCancelled, front, grpcCalls } = await resettableLane(connection, true)
    try {
      const answer = info(client).catch((error: unknown) => error)
      await pollUntil(() => held.length === 1, { timeoutMs: 5_000, everyMs: 10 })
      host.resetPeer(RESET)
      expect(await answer).toMatchObject({
        code: status.UNAVAILABLE,
        details: `agent channel reset: ${RESET}`,
      })
      expect(await pollUntil(() => heldCancelled.length === 1, { timeoutMs: 5_000, everyMs: 10 })).toBe(true)
      expect((await info(client)).hostname).toBe('after the reset')
      // Still on the lane (a reset is not an agent without it), and on the connection the test meant.
      expect(grpcCalls).toEqual([])
      if (front) expect(front.lines).toEqual([CALL_RELAY_SERVICE, INFO, INFO])
    } finally {
      front?.close()
    }
  })

  test('with its answer under way: it fails UNAVAILABLE, the guest sees it cancelled, the next call works', async () => {
    const { client, host, seen, front, grpcCalls } = await resettableLane(connection, false)
    try {
      const call = pullInFlight(client, '/forever')
      await call.answered
      host.resetPeer(RESET)
      // No reason here: once bytes of the answer went to the client, the supervisor cannot tell
      // whether a status would land between two messages, so the channel is closed bare
      // (agent-proxy.ts onClient, the splice's client end) and the client says what it saw.
      expect(await call.ended).toMatchObject({
        code: status.UNAVAILABLE,
        details: 'the agent channel closed before the call ended',
      })
      expect(
        await pollUntil(() => seen.cancelled.includes('pull /forever'), { timeoutMs: 5_000, everyMs: 10 }),
      ).toBe(true)
      expect((await info(client)).hostname).toBe('after the reset')
      expect(grpcCalls).toEqual([])
      if (front) expect(front.lines).toEqual([CALL_RELAY_SERVICE, PULL, INFO])
    } finally {
      front?.close()
    }
  })
})
