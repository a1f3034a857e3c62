import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import type { CallChannel } from './call-channel.js'
import { CHANNEL_WINDOW_BYTES } from './mux-channel.js'
import { MuxSession } from './mux-session.js'

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup()
})

/** Host and guest sessions over a real socket pair; the guest's 'rpc ' channels are CallChannels. */
async function sessions(serve: (channel: CallChannel) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'call-channel-'))
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(join(dir, 's'), resolve))
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
  const hostEnd = net.connect(join(dir, 's'))
  const guestEnd = await accepted
  server.close()
  const host = new MuxSession('host')
  const guest = new MuxSession('guest', (service) => service.startsWith('rpc '))
  const plain: string[] = []
  guest.on('channel', (channel, service) => {
    plain.push(service)
    channel.destroy()
  })
  guest.on('call', (channel) => serve(channel))
  guest.attach(guestEnd)
  host.attach(hostEnd)
  cleanups.push(() => {
    hostEnd.destroy()
    guestEnd.destroy()
    rmSync(dir, { recursive: true, force: true })
  })
  return { host, guest, plain }
}

/** An echo that stops reading while its writes wait for 'drain', and closes behind the last byte. */
function pausingEcho(channel: CallChannel): void {
  channel.on('data', (chunk: Buffer) => {
    if (channel.write(chunk)) return
    channel.pause()
    channel.once('drain', () => channel.resume())
  })
  channel.on('end', () => channel.closeWhenWritten())
}

describe('call channel (the guest side of a call, without a Node stream)', () => {
  test('three windows each way to an echo that pauses: every byte in order, then the close', async () => {
    const { host, guest, plain } = await sessions(pausingEcho)
    const data = randomBytes(3 * CHANNEL_WINDOW_BYTES + 12_345)
    const channel = host.openChannel('rpc /echo')
    const chunks: Buffer[] = []
    const closed = new Promise<void>((resolve) => channel.on('close', resolve))
    // A slow reader on the host too: credit must come back only as it reads.
    channel.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      channel.pause()
      setImmediate(() => channel.resume())
    })
    channel.end(data)
    await closed
    expect(Buffer.concat(chunks).equals(data)).toBe(true)
    expect(plain).toEqual([])
    expect(guest.openChannels).toBe(0)
    expect(host.openChannels).toBe(0)
  })

  test("a host that closes first: the guest's reader gets what came before, then 'end' and 'close'", async () => {
    const events: string[] = []
    let received = 0
    let closed: () => void
    const guestClosed = new Promise<void>((resolve) => {
      closed = resolve
    })
    const { host } = await sessions((channel) => {
      channel.pause()
      channel.on('data', (chunk: Buffer) => {
        received += chunk.length
      })
      channel.on('remote-close', () => events.push('remote-close'))
      channel.on('end', () => events.push(`end after ${received}`))
      channel.on('close', () => {
        events.push('close')
        closed()
      })
      setTimeout(() => channel.resume(), 100)
    })
    const channel = host.openChannel('rpc /sink')
    channel.write(Buffer.alloc(100_000))
    setTimeout(() => channel.destroy(), 50)
    await guestClosed
    expect(events).toEqual(['remote-close', 'end after 100000', 'close'])
  })

  test('a service that is not a call is a stream channel, as before', async () => {
    const { host, plain } = await sessions(() => {})
    const channel = host.openChannel('raw-echo')
    await new Promise((resolve) => channel.on('close', resolve).resume())
    expect(plain).toEqual(['raw-echo'])
  })
})
