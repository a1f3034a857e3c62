import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import { type AgentClient, AgentService, InfoResponse, LaneServer, MuxSession } from '@vmctl/agent'
import { afterEach, describe, expect, test } from 'vitest'
import { socketPair } from '../test-support/socket-pair.js'
import { pollUntil } from '../util/timing.js'
import { laneAgentClient } from '../vm/lane-client.js'
import { AgentProxy } from './agent-proxy.js'

// The supervisor's proxy between a lane client and both multiplexers over a socket pair standing
// in for the port, with a fake agent: what a client is told when the session goes under its call.

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup()
})

async function proxied(options: { guestKnowsLane: boolean }) {
  const dir = mkdtempSync(join(tmpdir(), 'agent-proxy-'))
  const [hostEnd, guestEnd] = await socketPair(join(dir, 'port'))
  const host = new MuxSession('host')
  const guest = new MuxSession('guest')
  const held: unknown[] = []
  const lane = new LaneServer()
  lane.addService(AgentService, { info: (call: unknown) => held.push(call) } as never)
  guest.on('channel', (channel: Duplex, service) => {
    channel.on('error', () => {})
    if (!options.guestKnowsLane || !lane.serve(channel, service)) channel.destroy()
  })
  guest.attach(guestEnd)
  host.attach(hostEnd)
  const proxy = new AgentProxy(host)
  const rawSocket = join(dir, 'raw.sock')
  await proxy.listen(join(dir, 'agent.sock'), rawSocket)
  const grpcCalls: string[] = []
  const grpc = {
    info: (...args: unknown[]) => {
      grpcCalls.push('info')
      const callback = args.at(-1) as (e: null, r: unknown) => void
      callback(null, InfoResponse.fromPartial({ hostname: 'over-grpc' }))
    },
  } as unknown as AgentClient
  cleanups.push(() => {
    proxy.close()
    hostEnd.destroy()
    guestEnd.destroy()
    rmSync(dir, { recursive: true, force: true })
  })
  return { client: laneAgentClient({ rawSocket }, () => grpc), host, held, grpcCalls }
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
    await pollUntil(() => held.length === 1, { timeoutMs: 5_000 })
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
