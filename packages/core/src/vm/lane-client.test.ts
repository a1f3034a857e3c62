import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import { Metadata, type ServiceError, status } from '@grpc/grpc-js'
import {
  type AgentClient,
  AgentService,
  type ExecResponse,
  InfoResponse,
  LANE_SERVICE_PREFIX,
  LaneServer,
  MuxSession,
  type PullResponse,
} from '@vmctl/agent'
import { afterEach, describe, expect, test } from 'vitest'
import { AgentProxy } from '../supervisor/agent-proxy.js'
import { socketPair } from '../test-support/socket-pair.js'
import { pollUntil, sleep } from '../util/timing.js'
import { laneAgentClient } from './lane-client.js'

// The host's lane client and the guest's lane server end to end, with the supervisor's proxy and
// both multiplexers in between over a socket pair standing in for the port: everything but QEMU
// (the VM tests run the real agent). The handlers are fakes shaped as the agent's.

type Fake = { on: (event: string, listener: (...args: never[]) => void) => void } & Record<string, never>
const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup()
})

async function lane(options: { guestKnowsLane?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'lane-'))
  const [hostEnd, guestEnd] = await socketPair(join(dir, 'port'))
  const host = new MuxSession('host')
  // As the agent makes it: a call's channel is a CallChannel, announced by 'call'.
  const guest = new MuxSession('guest', (service) => service.startsWith(LANE_SERVICE_PREFIX))
  const seen = { cancelled: [] as string[], pushed: 0 }
  const laneServer = new LaneServer()
  // biome-ignore lint/suspicious/noExplicitAny: fake handlers, called with the lane's call objects
  const handlers: Record<string, (call: any, callback?: any) => void> = {
    info: (_call, callback) => callback(null, InfoResponse.fromPartial({ hostname: 'fake-guest' })),
    shutdown: (_call, callback) => callback({ code: status.FAILED_PRECONDITION, details: 'no power here' }),
    logs: () => {
      throw new Error('a handler bug')
    },
    pull: (call) => {
      const path = call.request.path as string
      call.on('cancelled', () => seen.cancelled.push(`pull ${path}`))
      if (path === '/missing') return call.emit('error', { code: status.NOT_FOUND, details: 'no /missing' })
      call.write({ kind: { $case: 'stat', value: { size: 3 << 20, mode: 0o644, isDirectory: false } } })
      if (path === '/forever') return
      for (let i = 0; i < 3; i++) call.write({ kind: { $case: 'data', value: Buffer.alloc(1 << 20, i + 1) } })
      call.end()
    },
    push: (call, callback) => {
      call.on('data', (request: { kind?: { $case: string; value: Buffer } }) => {
        if (request.kind?.$case === 'data') seen.pushed += request.kind.value.length
      })
      call.on('end', () => callback(null, { bytes: seen.pushed }))
    },
    exec: (call: Fake & { write: (r: ExecResponse) => boolean; end: () => void }) => {
      call.on('cancelled', () => seen.cancelled.push('exec'))
      call.on('data', (request: { kind?: { $case: string; value: Buffer } }) => {
        const kind = request.kind
        if (kind?.$case === 'start') call.write({ kind: { $case: 'started', value: { pid: 42 } } })
        if (kind?.$case === 'stdin') call.write({ kind: { $case: 'stdout', value: kind.value } })
        if (kind?.$case === 'stdinEnd') {
          call.write({
            kind: { $case: 'exit', value: { exitCode: 0, signal: '', durationMs: 1, timedOut: false } },
          })
          call.end()
        }
      })
    },
  }
  laneServer.addService(AgentService, handlers as Record<keyof typeof AgentService, unknown>)
  guest.on('channel', (channel: Duplex) => channel.destroy())
  guest.on('call', (channel, service) => {
    channel.on('error', () => {})
    if (options.guestKnowsLane === false || !laneServer.serve(channel, service)) channel.destroy()
  })
  guest.attach(guestEnd)
  host.attach(hostEnd)
  const proxy = new AgentProxy(host)
  const rawSocket = join(dir, 'raw.sock')
  await proxy.listen(join(dir, 'agent.sock'), rawSocket)
  const grpcCalls: string[] = []
  const grpc = {
    info: (_r: unknown, _m: unknown, _o: unknown, callback: (e: null, r: unknown) => void) => {
      grpcCalls.push('info')
      callback(null, InfoResponse.fromPartial({ hostname: 'over-grpc' }))
    },
  } as unknown as AgentClient
  const client = laneAgentClient({ rawSocket }, () => grpc)
  cleanups.push(() => {
    proxy.close()
    hostEnd.destroy()
    guestEnd.destroy()
    rmSync(dir, { recursive: true, force: true })
  })
  return { client, seen, grpcCalls, proxy, rawSocket, grpc }
}

function unary<T>(start: (callback: (error: ServiceError | null, response?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) =>
    start((error, response) => (error ? reject(error) : resolve(response!))),
  )
}

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
