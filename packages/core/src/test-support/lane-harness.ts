import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
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
} from '@vmctl/agent'
import { AgentProxy, CALL_RELAY_SERVICE } from '../supervisor/agent-proxy.js'
import { takeFirstLine } from '../util/take-first-line.js'
import { laneAgentClient } from '../vm/lane-client.js'
import { socketPair } from './socket-pair.js'

// The host's lane client and the guest's lane server end to end, with the supervisor's proxy and
// both multiplexers in between over a socket pair standing in for the port: everything but QEMU
// (the VM tests run the real agent). The handlers are fakes shaped as the agent's. Each test file
// that uses it calls \`cleanLanes\` after each test.

type Fake = { on: (event: string, listener: (...args: never[]) => void) => void } & Record<string, never>
const cleanups: Array<() => void> = []

/** Tears down every lane made since the last call. */
export function cleanLanes(): void {
  for (const cleanup of cleanups.splice(0)) cleanup()
}

// biome-ignore lint/suspicious/noExplicitAny: fake handlers, called with the lane's call objects
type Handler = (call: any, callback?: any) => void

/**
 * A lane server with fake handlers behind a real proxy, and a lane client of it. `handlers`
 * replaces the fakes of those names (a test's own info, say); `host` is the supervisor's end of the
 * port (resetPeer() it for an agent that restarts under a call).
 */
export async function lane(options: { guestKnowsLane?: boolean; handlers?: Record<string, Handler> } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'lane-'))
  const [hostEnd, guestEnd] = await socketPair(join(dir, 'port'))
  const host = new MuxSession('host')
  // As the agent makes it: a call's channel is a CallChannel, announced by 'call'.
  const guest = new MuxSession('guest', (service) => service.startsWith(LANE_SERVICE_PREFIX))
  const seen = { cancelled: [] as string[], pushed: 0 }
  const laneServer = new LaneServer()
  const handlers: Record<string, Handler> = {
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
            kind: {
              $case: 'exit',
              value: { exitCode: 0, signal: '', durationMs: 1, timedOut: false, oomKills: [] },
            },
          })
          call.end()
        }
      })
    },
  }
  Object.assign(handlers, options.handlers)
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
    // As grpc-js's: metadata and options may be left out, the callback is the last argument.
    info: (...args: unknown[]) => {
      grpcCalls.push('info')
      const callback = args.at(-1) as (e: null, r: unknown) => void
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
  return { client, seen, grpcCalls, proxy, rawSocket, grpc, host, dir }
}

/** A unary call as a promise. */
export function unary<T>(
  start: (callback: (error: ServiceError | null, response?: T) => void) => void,
): Promise<T> {
  return new Promise((resolve, reject) =>
    start((error, response) => (error ? reject(error) : resolve(response!))),
  )
}

/** A pull left running: `answered` once its first message came, `ended` with its error (or 'ended'). */
export function pullInFlight(client: AgentClient, path: string) {
  const call = client.pull({ path, directory: false }, new Metadata(), {})
  const answered = new Promise((resolve) => call.once('data', resolve))
  const ended = new Promise((resolve) => {
    call.on('error', resolve)
    call.on('end', () => resolve('ended'))
  })
  return { answered, ended }
}

/**
 * A socket in front of the supervisor's raw socket that passes connections on, but for a client's
 * kept connections (`rpc-relay`): `relay(n)` for the n-th (from 0) says to close it without a
 * byte ('drop') or to pass it on after so many milliseconds. `lines`: the first line of every
 * connection, in order.
 */
export async function frontSocket(rawSocket: string, relay: (index: number) => 'drop' | number) {
  const path = `${rawSocket}.front`
  const lines: string[] = []
  let relays = 0
  const server = net.createServer(async (socket) => {
    const line = await takeFirstLine(socket)
    if (line === undefined) return void socket.destroy()
    lines.push(line)
    const held = line === CALL_RELAY_SERVICE ? relay(relays++) : 0
    if (held === 'drop') return void socket.destroy()
    // The socket stays paused (takeFirstLine) until the pipe: what came after the line waits in it.
    setTimeout(() => {
      const back = net.connect(rawSocket)
      back.write(`${line}\n`)
      socket.pipe(back).pipe(socket)
      socket.on('error', () => back.destroy())
      back.on('error', () => socket.destroy())
      socket.on('close', () => back.destroy())
      back.on('close', () => socket.destroy())
    }, held)
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
