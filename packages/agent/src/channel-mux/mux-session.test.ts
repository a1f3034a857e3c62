import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import { afterAll, afterEach, describe, expect, test } from 'vitest'
import { decodeFrame, encodeFrame, encodeFrameHeader, FrameType } from './frame-codec.js'
import { encodeHandshakeLine, parseHandshakeLine } from './handshake-lines.js'
import type { MuxChannel } from './mux-channel.js'
import { MuxSession } from './mux-session.js'

// One directory for the file's temporary files, removed when it ends.
const work = mkdtempSync(join(tmpdir(), 'vmctl-mux-session-test-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

/** A connected pair of real sockets, standing in for QEMU's chardev and the guest's port. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const path = join(mkdtempSync(join(work, 'mux-')), 's')
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(path, r))
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r))
  const client = net.connect(path)
  const guestEnd = await accepted
  server.close()
  return [client, guestEnd]
}

/** Polls `find` until it gives something (a test's own bound ends a wait that never does). */
async function waitFor<T>(find: () => T | undefined): Promise<T> {
  for (;;) {
    const found = find()
    if (found !== undefined) return found
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

async function connectedSessions() {
  const [hostSocket, guestSocket] = await socketPair()
  const host = new MuxSession('host')
  const guest = new MuxSession('guest')
  const accepted: Duplex[] = []
  guest.on('channel', (channel) => {
    accepted.push(channel)
    channel.on('error', () => {})
    channel.pipe(channel) // echo
  })
  guest.attach(guestSocket)
  host.attach(hostSocket)
  cleanups.push(() => {
    hostSocket.destroy()
    guestSocket.destroy()
  })
  return { host, guest, accepted, hostSocket, guestSocket }
}

function readAll(channel: Duplex, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let total = 0
    channel.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      total += chunk.length
      if (total >= bytes) resolve(Buffer.concat(chunks))
    })
    channel.on('error', reject)
  })
}

describe('frames and handshake lines', () => {
  test('a frame round-trips and a wrong magic is lost sync', () => {
    const frame = encodeFrame(FrameType.Data, 7, Buffer.from('hi'))
    const step = decodeFrame(Buffer.concat([frame, Buffer.from('rest')]))
    expect(step.kind).toBe('frame')
    if (step.kind === 'frame') {
      expect(step.frame).toMatchObject({ type: FrameType.Data, channel: 7 })
      expect(step.frame.payload.toString()).toBe('hi')
      expect(step.rest.toString()).toBe('rest')
    }
    expect(decodeFrame(frame.subarray(0, 5)).kind).toBe('incomplete')
    expect(decodeFrame(Buffer.from('VMCTL-HELLO 1\n')).kind).toBe('lost-sync')
  })

  test('handshake lines parse strictly', () => {
    const line = encodeHandshakeLine({ kind: 'ready', nonce: 'ab12' }).toString().trim()
    expect(parseHandshakeLine(line)).toEqual({ kind: 'ready', nonce: 'ab12' })
    expect(parseHandshakeLine('VMCTL-READY zz')).toBeUndefined()
    expect(parseHandshakeLine('something else')).toBeUndefined()
  })
})

describe('channel multiplexer over a real socket', () => {
  test('channels opened before the session is ready carry data once it is', async () => {
    const { host } = await connectedSessions()
    const channels = [host.openChannel(), host.openChannel(), host.openChannel()]
    const payloads = channels.map((_, i) => Buffer.alloc(300_000 + i, 65 + i))
    const echoes = channels.map((channel, i) => readAll(channel, payloads[i]!.length))
    for (const [i, channel] of channels.entries()) channel.write(payloads[i])
    const received = await Promise.all(echoes)
    for (const [i, buf] of received.entries()) expect(buf.equals(payloads[i]!)).toBe(true)
  })

  test('a reader that stops reading holds up its own channel only (backpressure, not memory)', async () => {
    const { host, accepted } = await connectedSessions()
    const slow = host.openChannel()
    const fast = host.openChannel()
    slow.write('x')
    fast.write('y')
    await new Promise((r) => setTimeout(r, 100))
    const guestSlow = accepted[0]!
    guestSlow.unpipe()
    guestSlow.pause()
    // Flood the paused channel: writes stall at the credit window instead of buffering 20 MB.
    let written = 0
    const big = Buffer.alloc(64 * 1024)
    while (written < 20 * 1024 * 1024 && slow.write(big)) written += big.length
    const echo = readAll(fast, 5)
    fast.write('hello')
    expect((await echo).toString()).toContain('hello')
    expect(guestSlow.readableLength).toBeLessThanOrEqual(2 * 1024 * 1024)
  })

  test.each(['destroy', 'closeWhenWritten'] as const)(
    'a sender that writes its last bytes and closes at once (%s) loses nothing to a slow reader',
    async (how) => {
      const { host, guest } = await connectedSessions()
      const opened = once(guest, 'channel')
      const channel = host.openChannel()
      const sender = (await opened)[0] as MuxChannel
      sender.unpipe()
      const last = Buffer.alloc(1024 * 1024, 0x5a)
      // The reader is paused when the bytes and the CLOSE arrive, and reads them later.
      let received = 0
      channel.on('data', (chunk: Buffer) => {
        received += chunk.length
      })
      channel.pause()
      const errors: string[] = []
      channel.on('error', (error) => errors.push(error.message))
      const remoteClosed = once(channel, 'remote-close')
      if (how === 'destroy') {
        // The bytes must have left before the destroy sends CLOSE: wait for their callback.
        await new Promise<void>((resolve) => sender.write(last, () => resolve()))
        sender.destroy()
      } else {
        sender.write(last)
        sender.closeWhenWritten()
      }
      await remoteClosed
      expect(channel.readableLength).toBe(last.length)
      // Writes after the peer closed have nowhere to go: dropped, not an error.
      channel.write('dropped')
      const closed = once(channel, 'close')
      channel.resume()
      await closed
      expect(received).toBe(last.length)
      expect(errors).toEqual([])
    },
    10_000,
  )

  test('a replaced transport resets the session and new channels work', async () => {
    const { host, hostSocket } = await connectedSessions()
    const first = host.openChannel()
    await readAll((first.write('ping'), first), 4)
    const resets: string[] = []
    host.on('reset', (reason) => resets.push(reason))
    const closed = new Promise((r) => first.on('close', r))
    // The transport is replaced (a reconnect, a restored snapshot): old channels go, new ones work.
    void hostSocket
    const fresh = new MuxSession('guest')
    fresh.on('channel', (channel) => channel.on('error', () => {}).pipe(channel))
    const [h2, g2] = await socketPair()
    cleanups.push(() => {
      h2.destroy()
      g2.destroy()
    })
    host.attach(h2)
    fresh.attach(g2)
    await closed
    const second = host.openChannel()
    const echoed = readAll(second, 5)
    second.write('again')
    expect((await echoed).toString()).toBe('again')
    expect(resets.length).toBeGreaterThan(0)
  })

  test('an agent that restarts on the same port announces itself and gets a fresh session', async () => {
    const { host, guestSocket } = await connectedSessions()
    const first = host.openChannel()
    await readAll((first.write('ping'), first), 4)
    const closed = new Promise((r) => first.on('close', r))
    const ready = new Promise<void>((r) => host.once('ready', () => r()))
    guestSocket.write(encodeHandshakeLine({ kind: 'agent-up', nonce: 'beef' }))
    await closed
    await ready
    const second = host.openChannel()
    const echoed = readAll(second, 5)
    second.write('fresh')
    expect((await echoed).toString()).toBe('fresh')
  })

  test('stale bytes before the handshake are discarded', async () => {
    const [hostSocket, guestSocket] = await socketPair()
    cleanups.push(() => {
      hostSocket.destroy()
      guestSocket.destroy()
    })
    // Leftovers of an old session sit in the guest's direction before the host connects.
    guestSocket.write(
      Buffer.concat([Buffer.from('garbage\n'), encodeFrame(FrameType.Data, 1, Buffer.from('old'))]),
    )
    const guest = new MuxSession('guest')
    guest.on('channel', (channel) => channel.on('error', () => {}).pipe(channel))
    const host = new MuxSession('host')
    host.attach(hostSocket)
    guest.attach(guestSocket)
    const channel = host.openChannel()
    const echoed = readAll(channel, 3)
    channel.write('new')
    expect((await echoed).toString()).toBe('new')
  })

  test('a parked session keeps its transport; the guest waits silently and a new host session starts on it', async () => {
    const { host, guestSocket, hostSocket } = await connectedSessions()
    const first = host.openChannel()
    await readAll((first.write('ping'), first), 4)
    const closed = new Promise((r) => first.on('close', r))
    expect(await host.park(5_000)).toBe(true)
    await closed
    expect(host.isReady).toBe(false)
    expect(hostSocket.destroyed).toBe(false)
    // Parked, the guest sends nothing (no AGENT-UP): a snapshot taken now wakes on the host's bytes.
    const heard: Buffer[] = []
    hostSocket.on('data', (chunk: Buffer) => heard.push(chunk))
    await new Promise((r) => setTimeout(r, 700))
    expect(Buffer.concat(heard).toString('latin1')).not.toContain('AGENT-UP')
    hostSocket.removeAllListeners('data')
    // The next host (here the same socket, as after a restore with the host connected) syncs at once.
    const ready = new Promise<void>((r) => host.once('ready', () => r()))
    host.attach(hostSocket)
    await ready
    const second = host.openChannel()
    const echoed = readAll(second, 5)
    second.write('again')
    expect((await echoed).toString()).toBe('again')
    expect(guestSocket.destroyed).toBe(false)
  })

  test("the guest's 'parking' listeners run before PARKED goes out (the agent finishes V8's compiles there)", async () => {
    const { host, guest, hostSocket } = await connectedSessions()
    const first = host.openChannel()
    await readAll((first.write('ping'), first), 4)
    const order: string[] = []
    hostSocket.on('data', (chunk: Buffer) => {
      if (chunk.toString('latin1').includes('VMCTL-PARKED')) order.push('PARKED sent')
    })
    guest.on('parking', () => order.push('parking'))
    expect(await host.park(5_000)).toBe(true)
    expect(order).toEqual(['parking', 'PARKED sent'])
  })

  test('parking a session that is not ready resolves false at once', async () => {
    const host = new MuxSession('host')
    expect(await host.park(5_000)).toBe(false)
  })

  test('a host that knows its guest is parked sends GO with HELLO: one round trip; a guest mid-session resyncs too', async () => {
    const { host, hostSocket } = await connectedSessions()
    const first = host.openChannel()
    await readAll((first.write('ping'), first), 4)
    expect(await host.park(5_000)).toBe(true)
    const written: string[] = []
    const write = hostSocket.write.bind(hostSocket)
    hostSocket.write = ((chunk: Buffer, ...rest: never[]) => {
      written.push(chunk.toString('latin1'))
      return write(chunk, ...rest)
    }) as typeof hostSocket.write
    const ready = new Promise<void>((r) => host.once('ready', () => r()))
    host.attach(hostSocket, { peerParked: true })
    // Both lines go out before the guest has answered anything.
    expect(written.join('')).toMatch(/VMCTL-HELLO ([0-9a-f]+)\n\nVMCTL-GO \1\n/)
    await ready
    const second = host.openChannel()
    const echoed = readAll(second, 4)
    second.write('pong')
    expect((await echoed).toString()).toBe('pong')
    hostSocket.write = write

    // Told "parked" about a guest that is in the middle of a session, the host still gets one.
    const again = new Promise<void>((r) => host.once('ready', () => r()))
    host.attach(hostSocket, { peerParked: true })
    await again
    const third = host.openChannel()
    const echoedAgain = readAll(third, 5)
    third.write('again')
    expect((await echoedAgain).toString()).toBe('again')
  })
})

describe('a host session whose guest agent died mid-frame', () => {
  test('the next session does not take its first bytes for the rest of the old frame', async () => {
    const [hostSocket, guestSocket] = await socketPair()
    cleanups.push(() => {
      hostSocket.destroy()
      guestSocket.destroy()
    })
    // The guest's side by hand, so that it can stop in the middle of a frame.
    let heard = ''
    guestSocket.on('data', (chunk: Buffer) => {
      heard += chunk.toString('latin1')
    })
    const host = new MuxSession('host')
    const handshake = async () => {
      heard = ''
      const ready = once(host, 'ready')
      const hello = await waitFor(() => /VMCTL-HELLO ([0-9a-f]+)\n/.exec(heard)?.[1])
      guestSocket.write(encodeHandshakeLine({ kind: 'ok', nonce: hello }))
      await waitFor(() => heard.includes(`VMCTL-GO ${hello}\n`) || undefined)
      guestSocket.write(encodeHandshakeLine({ kind: 'ready', nonce: hello }))
      await ready
    }
    host.attach(hostSocket)
    await handshake()
    const first = host.openChannel()
    first.on('error', () => {})
    const half = once(first, 'data')
    // A DATA frame of 100 bytes, of which 50 come: then the agent dies (QEMU reports the port closed).
    guestSocket.write(
      Buffer.concat([encodeFrameHeader(FrameType.Data, first.id, 100), Buffer.alloc(50, 0x78)]),
    )
    await half
    host.resetPeer('the guest agent process died')
    await handshake()
    const second = host.openChannel()
    const fresh = once(second, 'data')
    guestSocket.write(encodeFrame(FrameType.Data, second.id, Buffer.from('fresh')))
    // Before: the reader still owed the old frame 50 bytes, and gave it this frame's 16.
    const received = await Promise.race([
      fresh,
      new Promise((resolve) => setTimeout(resolve, 2_000, 'nothing')),
    ])
    expect(received === 'nothing' ? 'nothing' : String((received as Buffer[])[0])).toBe('fresh')
  })
})

describe('a relayed session (a client and its supervisor)', () => {
  for (const role of ['host', 'guest'] as const) {
    test(`${role} side: bytes that are not a frame end the session and its socket, and the event loop goes on`, async () => {
      const [mine, peer] = await socketPair()
      cleanups.push(() => {
        mine.destroy()
        peer.destroy()
      })
      const session = new MuxSession(role)
      session.on('channel', () => {})
      session.attach(mine, { relayed: true })
      expect(session.isReady).toBe(true)
      const peerClosed = once(peer, 'close')
      peer.write('not a frame\n')
      // Before the fix the pump decoded the same bytes forever: no timer ever fired again.
      await new Promise((resolve) => setTimeout(resolve, 50))
      await peerClosed
      expect(session.isReady).toBe(false)
      expect(mine.destroyed).toBe(true)
    })
  }
})
