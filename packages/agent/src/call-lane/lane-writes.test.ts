import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, test } from 'vitest'
import { MuxSession } from '../channel-mux/mux-session.js'
import { AgentService, PullResponse } from '../generated/vmctl/agent/v1/agent.js'
import { agentServiceWithFileCodecs } from '../guest/file-codecs.js'
import { handlePull } from '../guest/file-service.js'
import { guestInfo } from '../guest/info-service.js'
import {
  encodeEnd,
  encodeMessage,
  LANE_SERVICE_PREFIX,
  type LaneFrame,
  LaneFrameReader,
} from './lane-frames.js'
import { LaneServer } from './lane-server.js'

// The agent's own handlers on the lane, both multiplexers over a real socket pair standing in for
// the port: what each side writes per call. Under TCG each write to the port is a transfer and a
// wake-up of the emulated guest, so a call's writes are its cost.

const work = mkdtempSync(join(tmpdir(), 'lane-writes-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))
const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup()
})

async function agentOverSockets() {
  const path = join(work, `port-${cleanups.length}-${Date.now()}`)
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(path, resolve))
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
  const hostEnd = net.connect(path)
  const guestEnd = await accepted
  server.close()
  const root = { busybox: 'busybox', chrootPath: undefined }
  const lane = new LaneServer()
  lane.addService(agentServiceWithFileCodecs(), {
    info: (_call: unknown, callback: (error: null, value: unknown) => void) =>
      callback(null, guestInfo(root)),
    pull: (call: Parameters<typeof handlePull>[0]) => handlePull(call, root),
  } as never)
  // As the agent makes it: a call's channel is a CallChannel, announced by 'call'.
  const guest = new MuxSession('guest', (service) => service.startsWith(LANE_SERVICE_PREFIX))
  guest.on('call', (channel, service) => {
    if (!lane.serve(channel, service)) channel.destroy()
  })
  const host = new MuxSession('host')
  guest.attach(guestEnd)
  host.attach(hostEnd)
  await new Promise<void>((resolve) => host.once('ready', resolve))
  cleanups.push(() => {
    hostEnd.destroy()
    guestEnd.destroy()
  })
  const writes = { host: 0, guest: 0 }
  for (const [side, socket] of [
    ['host', hostEnd],
    ['guest', guestEnd],
  ] as const) {
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean
    socket.write = ((...args: unknown[]) => {
      writes[side]++
      return write(...args)
    }) as typeof socket.write
  }
  /**
   * One call as the supervisor makes it: a channel named by the method, the request, frames back.
   * Without a request (undefined), the client's end frame alone.
   */
  const call = (method: 'info' | 'pull', request: unknown) =>
    new Promise<LaneFrame[]>((resolve, reject) => {
      const definition = AgentService[method]
      const channel = host.openChannel(`${LANE_SERVICE_PREFIX}${definition.path}`)
      const reader = new LaneFrameReader()
      const frames: LaneFrame[] = []
      channel.on('error', reject)
      channel.on('data', (chunk: Buffer) => frames.push(...reader.push(chunk)))
      // The guest closes the channel behind the status: the host's end goes by itself.
      channel.on('close', () =>
        frames.at(-1)?.kind === 'status' ? resolve(frames) : reject(new Error('closed before the status')),
      )
      if (request === undefined) channel.write(encodeEnd())
      else
        for (const frame of encodeMessage(definition.requestSerialize(request as never))) channel.write(frame)
    })
  /** Writes of each side over `calls` calls, after the sides settled. */
  const count = async (calls: () => Promise<unknown>) => {
    await calls()
    await new Promise((resolve) => setTimeout(resolve, 50))
    writes.host = 0
    writes.guest = 0
    await calls()
    await new Promise((resolve) => setTimeout(resolve, 50))
    return { ...writes }
  }
  return { call, count }
}

const pulled = (frames: LaneFrame[]) =>
  frames
    .filter((frame) => frame.kind === 'message')
    .map((frame) => PullResponse.decode((frame as { payload: Buffer }).payload).kind)

describe('call lane writes per call, without a VM', () => {
  test('info(): the request leaves the host in one write, the answer the guest in one', async () => {
    const agent = await agentOverSockets()
    const frames = await agent.call('info', {})
    expect(frames.map((frame) => frame.kind)).toEqual(['message', 'status'])
    const writes = await agent.count(() => agent.call('info', {}))
    expect(writes.guest).toBe(1)
    // OPEN and DATA in one write, and no CLOSE: the guest closed the channel behind its status.
    expect(writes.host).toBe(1)
  })

  test('a unary call whose client ends without a request is answered INTERNAL, and the next call answers', async () => {
    const agent = await agentOverSockets()
    expect(await agent.call('info', undefined)).toEqual([
      { kind: 'status', code: 13, details: 'the call sent no request' },
    ])
    expect((await agent.call('info', {})).map((frame) => frame.kind)).toEqual(['message', 'status'])
  })

  test.each([1, 1000, 16_383, 16_384, 65_535])(
    'a small file of %i bytes: stat, data and status at once from the guest',
    async (size) => {
      const agent = await agentOverSockets()
      const path = join(work, `small-${size}`)
      const content = Buffer.alloc(size, 0x61)
      content[size - 1] = 0x7a
      writeFileSync(path, content)
      const pull = () => agent.call('pull', { path, directory: false })
      const frames = await pull()
      const kinds = pulled(frames)
      expect(kinds.map((kind) => kind?.$case)).toEqual(['stat', 'data'])
      expect(kinds[1]?.$case === 'data' && kinds[1].value.equals(content)).toBe(true)
      expect(frames.at(-1)).toEqual({ kind: 'status', code: 0, details: '' })
      // From 16 KiB a data frame is written apart, not copied (frame-outbox.ts): two pieces more.
      const writes = (await agent.count(pull)).guest
      if (size < 16_384 - 16) expect(writes).toBe(1)
      else expect(writes).toBeLessThanOrEqual(4)
    },
  )

  test('an empty file, a larger one and a missing one keep their answers', async () => {
    const agent = await agentOverSockets()
    writeFileSync(join(work, 'empty'), '')
    const empty = pulled(await agent.call('pull', { path: join(work, 'empty'), directory: false }))
    expect(empty.map((kind) => kind?.$case)).toEqual(['stat'])
    const large = Buffer.alloc(200_000, 0x62)
    writeFileSync(join(work, 'large'), large)
    const data = pulled(await agent.call('pull', { path: join(work, 'large'), directory: false })).flatMap(
      (kind) => (kind?.$case === 'data' ? [kind.value] : []),
    )
    expect(Buffer.concat(data).equals(large)).toBe(true)
    const missing = await agent.call('pull', { path: join(work, 'missing'), directory: false })
    expect(missing.at(-1)).toMatchObject({ kind: 'status', code: 5 })
  })
})
