import net from 'node:net'
import { join } from 'node:path'
import { type AgentClient, InfoResponse } from '@vmctl/agent'
import { afterEach, describe, expect, test, vi } from 'vitest'
import { cleanLanes, lane } from '../test-support/lane-harness.js'
import { pollUntil } from '../util/timing.js'
import { laneAgentClient } from '../vm/lane-client.js'

// The supervisor's proxy between a lane client and both multiplexers over a socket pair standing
// in for the port, with a fake agent (lane-harness.ts): what a client is told when the session goes
// under its call.

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup()
  cleanLanes()
})

type HeldCall = { on: (event: string, listener: () => void) => void }

/** The harness's lane, whose info() holds a client's calls (for a reset under one) or answers them. */
async function proxied(options: { guestKnowsLane: boolean; answer?: boolean }) {
  const held: HeldCall[] = []
  const cancelled: number[] = []
  let answered = 0
  const info = (call: HeldCall, callback: (e: null, r: unknown) => void) => {
    if (options.answer) return callback(null, InfoResponse.fromPartial({ hostname: `call ${++answered}` }))
    held.push(call)
    call.on('cancelled', () => cancelled.push(held.indexOf(call)))
  }
  return { ...(await lane({ guestKnowsLane: options.guestKnowsLane, handlers: { info } })), held, cancelled }
}

function info(client: AgentClient) {
  return new Promise<{ error?: { code: number; details: string }; hostname?: string }>((resolve) =>
    client.info({}, (error, response) => resolve(error ? { error } : { hostname: response.hostname })),
  )
}

describe('agent proxy: a lane call under a session reset', () => {
  test('is told the reason in a status: the client stays on the lane and does not send it again', async () => {
    const { client, host, held, grpcCalls } = await proxied({ guestKnowsLane: true })
    const answer = info(client)
    await pollUntil(() => held.length === 1, { timeoutMs: 5_000, everyMs: 10 })
    host.resetPeer('the guest agent restarted')
    const { error } = await answer
    expect(error?.code).toBe(14)
    expect(error?.details).toMatch(/the guest agent restarted/)
    expect(grpcCalls).toEqual([])
  })

  test('an agent without the lane still moves the client to gRPC (a bare close, not a reset)', async () => {
    const { client, grpcCalls } = await proxied({ guestKnowsLane: false })
    expect(await info(client)).toEqual({ hostname: 'over-grpc' })
    expect(grpcCalls).toEqual(['info'])
  })
})

describe("agent proxy: a client's calls on its kept connection", () => {
  test('share one connection to the supervisor, each answered on its own channel', async () => {
    const { client } = await proxied({ guestKnowsLane: true, answer: true })
    const connect = vi.spyOn(net, 'connect')
    cleanups.push(() => connect.mockRestore())
    const answers = await Promise.all([info(client), info(client), info(client)])
    for (let i = 0; i < 5; i++) answers.push(await info(client))
    expect(answers.map((a) => a.hostname).sort()).toEqual(
      ['call 1', 'call 2', 'call 3', 'call 4', 'call 5', 'call 6', 'call 7', 'call 8'].sort(),
    )
    expect(connect).toHaveBeenCalledTimes(1)
  })

  test('a call while the VM is stopped is told so in a status; the client stays on the lane', async () => {
    const { client, proxy, grpcCalls } = await proxied({ guestKnowsLane: true, answer: true })
    expect(await info(client)).toEqual({ hostname: 'call 1' })
    proxy.refuse()
    const { error } = await info(client)
    expect(error?.code).toBe(14)
    expect(error?.details).toMatch(/stopped or going down/)
    proxy.accept()
    expect(await info(client)).toEqual({ hostname: 'call 2' })
    expect(grpcCalls).toEqual([])
  })

  test('a client that closes its connection cancels its calls in the guest', async () => {
    const { client, held, cancelled } = await proxied({ guestKnowsLane: true })
    const answer = info(client)
    await pollUntil(() => held.length === 1, { timeoutMs: 5_000, everyMs: 10 })
    client.close()
    // CANCELLED by the client itself (lane-client-close.test.ts), no longer UNAVAILABLE from the reset.
    expect((await answer).error?.code).toBe(1)
    expect(await pollUntil(() => cancelled.length === 1, { timeoutMs: 5_000, everyMs: 10 })).toBe(true)
  })

  test('a client that closes its kept connection leaves no socket open in the supervisor', async () => {
    const { proxy, rawSocket } = await proxied({ guestKnowsLane: true, answer: true })
    const rawServer = (proxy as unknown as { servers: net.Server[] }).servers[1]!
    const open = () =>
      new Promise<number>((resolve) => rawServer.getConnections((_, count) => resolve(count)))
    for (let i = 0; i < 5; i++) {
      const client = laneAgentClient({ rawSocket }, () => {
        throw new Error('not over gRPC')
      })
      expect(await info(client)).toEqual({ hostname: `call ${i + 1}` })
      client.close()
    }
    // Before, the supervisor's end stayed half-open for its life: one descriptor per client gone.
    expect(await pollUntil(async () => (await open()) === 0, { timeoutMs: 5_000, everyMs: 20 })).toBe(true)
  })

  test('a supervisor without the relay (an older one) gets a connection per call, and the calls work', async () => {
    const { rawSocket, dir } = await proxied({ guestKnowsLane: true, answer: true })
    // An older supervisor: a service line it does not know is a channel the agent closes at once.
    const olderSocket = join(dir, 'older.sock')
    const older = net.createServer((socket) => {
      socket.once('data', (chunk: Buffer) => {
        if (chunk.toString('latin1').startsWith('rpc-relay\n')) return void socket.destroy()
        const upstream = net.connect(rawSocket)
        upstream.write(chunk)
        socket.pipe(upstream).pipe(socket)
        socket.on('error', () => upstream.destroy())
        upstream.on('error', () => socket.destroy())
      })
    })
    await new Promise<void>((resolve) => older.listen(olderSocket, resolve))
    cleanups.unshift(() => older.close())
    const client = laneAgentClient({ rawSocket: olderSocket }, () => {
      throw new Error('not over gRPC')
    })
    const connect = vi.spyOn(net, 'connect')
    cleanups.push(() => connect.mockRestore())
    expect(await info(client)).toEqual({ hostname: 'call 1' })
    expect(await info(client)).toEqual({ hostname: 'call 2' })
    // The relay's probe, then one connection per call (each forwarded upstream by the fake).
    const toOlder = connect.mock.calls.filter((call) => call[0] === olderSocket)
    expect(toOlder).toHaveLength(3)
  })
})
