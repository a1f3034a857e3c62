import { Metadata, status } from '@grpc/grpc-js'
import type { AgentClient, ExecResponse, InfoResponse, PullResponse } from '@vmctl/agent'
import { afterEach, describe, expect, test } from 'vitest'
import { cleanLanes, lane, unary } from '../test-support/lane-harness.js'
import { pollUntil, sleep } from '../util/timing.js'
import { laneAgentClient } from './lane-client.js'

// The host's lane client and the guest's lane server end to end, without a VM (lane-harness.ts).

afterEach(cleanLanes)

function start(argv: string[]) {
  return { argv, shell: '', env: {}, cwd: '/', user: '', stdin: true, timeoutMs: 0, noStarted: false }
}

function pullAll(client: AgentClient, path: string, deadline?: Date, slow = false) {
  return new Promise<Buffer>((resolve, reject) => {
    const call = client.pull({ path, directory: false }, new Metadata(), deadline ? { deadline } : {})
    const chunks: Buffer[] = []
    call.on('data', (response: PullResponse) => {
      if (response.kind?.$case !== 'data') return
      chunks.push(response.kind.value)
      if (slow) {
        call.pause()
        void sleep(20).then(() => call.resume())
      }
    })
    call.on('end', () => resolve(Buffer.concat(chunks)))
    call.on('error', reject)
  })
}

describe('call lane, client and server without a VM', () => {
  test('a unary call answers; a refused one keeps its code and details', async () => {
    const { client } = await lane()
    const info = await unary<InfoResponse>((cb) => client.info({}, new Metadata(), {}, cb))
    expect(info.hostname).toBe('fake-guest')
    const refused = await unary((cb) => client.shutdown({ reboot: false }, new Metadata(), {}, cb)).catch(
      (e) => e,
    )
    expect(refused).toMatchObject({ code: status.FAILED_PRECONDITION, details: 'no power here' })
  })

  test('a call refused while the VM is stopped fails as such, and the client stays on the lane', async () => {
    const { client, grpcCalls, proxy, rawSocket, grpc } = await lane()
    proxy.refuse()
    const refused = await unary((cb) => client.info({}, new Metadata(), {}, cb)).catch((e) => e)
    expect(refused).toMatchObject({ code: status.UNAVAILABLE, details: 'the VM is stopped or going down' })
    proxy.accept()
    const info = await unary<InfoResponse>((cb) => client.info({}, new Metadata(), {}, cb))
    expect(info.hostname).toBe('fake-guest')
    expect(grpcCalls).toEqual([])
    // A supervisor gone (no socket) is not an agent without the lane either.
    const orphan = laneAgentClient({ rawSocket: `${rawSocket}.gone` }, () => grpc)
    const gone = await unary((cb) => orphan.info({}, new Metadata(), {}, cb)).catch((e) => e)
    expect(gone).toMatchObject({ code: status.UNAVAILABLE })
    expect(grpcCalls).toEqual([])
  })

  test('a handler that throws answers its call with INTERNAL and the message, not silence', async () => {
    const { client } = await lane()
    const failed = await new Promise((resolve) => {
      const call = client.logs({ follow: false, sources: [] }, new Metadata(), {})
      call.on('error', resolve)
      call.on('end', () => resolve('ended without an error'))
      void sleep(5_000).then(() => resolve('no answer within 5 s'))
    })
    expect(failed).toMatchObject({ code: status.INTERNAL, details: expect.stringContaining('a handler bug') })
  })

  test('a server stream arrives whole to a reader that pauses; an error ends it with its code', async () => {
    const { client } = await lane()
    const bytes = await pullAll(client, '/file', undefined, true)
    expect(bytes.length).toBe(3 << 20)
    expect([bytes[0], bytes[(1 << 20) + 5], bytes[(3 << 20) - 1]]).toEqual([1, 2, 3])
    await expect(pullAll(client, '/missing')).rejects.toMatchObject({ code: status.NOT_FOUND })
  })

  test('a client stream sends every byte before the answer', async () => {
    const { client } = await lane()
    const answer = await unary<{ bytes: number }>((cb) => {
      const call = client.push(new Metadata(), {}, cb)
      call.write({
        kind: { $case: 'header', value: { path: '/x', mode: 0, owner: '', parents: true, directory: false } },
      })
      for (let i = 0; i < 5; i++) call.write({ kind: { $case: 'data', value: Buffer.alloc(1 << 20) } })
      call.end()
    })
    expect(answer.bytes).toBe(5 << 20)
  })

  test('bidi: stdin comes back as stdout, then the exit; a cancelled call is cancelled in the guest', async () => {
    const { client, seen } = await lane()
    const out: string[] = []
    await new Promise<void>((resolve, reject) => {
      const call = client.exec(new Metadata(), {})
      call.on('data', (r: ExecResponse) => {
        if (r.kind?.$case === 'stdout') out.push(r.kind.value.toString())
        if (r.kind?.$case === 'exit') resolve()
      })
      call.on('error', reject)
      call.write({ kind: { $case: 'start', value: start(['cat']) } })
      call.write({ kind: { $case: 'stdin', value: Buffer.from('hello') } })
      call.write({ kind: { $case: 'stdinEnd', value: true } })
    })
    expect(out.join('')).toBe('hello')
    expect(seen.cancelled).toEqual([])
    const call = client.exec(new Metadata(), {})
    const error = new Promise((resolve) => call.on('error', resolve))
    call.write({ kind: { $case: 'start', value: start(['sleep', '9']) } })
    await new Promise((resolve) => call.once('data', resolve))
    call.cancel()
    expect(await error).toMatchObject({ code: status.CANCELLED })
    expect(await pollUntil(() => seen.cancelled.includes('exec'), { timeoutMs: 2000, everyMs: 10 })).toBe(
      true,
    )
  })

  test('a deadline fails the call with DEADLINE_EXCEEDED and cancels it in the guest', async () => {
    const { client, seen } = await lane()
    const error = await pullAll(client, '/forever', new Date(Date.now() + 1_500)).catch((e) => e)
    expect(error).toMatchObject({ code: status.DEADLINE_EXCEEDED })
    expect(
      await pollUntil(() => seen.cancelled.includes('pull /forever'), { timeoutMs: 2000, everyMs: 10 }),
    ).toBe(true)
  })

  test('an agent without the lane, or VMCTL_AGENT_TRANSPORT=grpc: calls go over gRPC', async () => {
    const old = await lane({ guestKnowsLane: false })
    const info = await unary<InfoResponse>((cb) => old.client.info({}, new Metadata(), {}, cb))
    expect(info.hostname).toBe('over-grpc')
    const current = await lane()
    process.env.VMCTL_AGENT_TRANSPORT = 'grpc'
    try {
      const viaGrpc = await unary<InfoResponse>((cb) => current.client.info({}, new Metadata(), {}, cb))
      expect(viaGrpc.hostname).toBe('over-grpc')
    } finally {
      delete process.env.VMCTL_AGENT_TRANSPORT
    }
    expect(current.grpcCalls).toEqual(['info'])
  })
})
