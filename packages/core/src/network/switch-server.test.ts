import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { isAlive } from '../supervisor/vm-directory.js'
import { encodeMessage, LineDecoder } from '../util/lines.js'
import { pollUntil } from '../util/timing.js'
import { NetworkDirectory } from './network-directory.js'
import { NetworkClient } from './network-protocol.js'
import { startSwitch, VmNetwork } from './vm-network.js'

// The switch process for real (no VM): what a member's supervisor or a second request at the
// wrong moment does to it. Each test has a network of its own.

/** A raw control connection: requests written together in one write, as one chunk. */
async function rawRequests(path: string, requests: object[]): Promise<Array<Record<string, unknown>>> {
  const socket = net.connect(path)
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  const decoder = new LineDecoder()
  const replies: Array<Record<string, unknown>> = []
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => replies.push(...(decoder.push(chunk) as typeof replies)))
  socket.write(requests.map((r, i) => encodeMessage({ ...r, id: String(i) })).join(''))
  await pollUntil(() => replies.length === requests.length, { timeoutMs: 5_000, everyMs: 10 })
  socket.destroy()
  return requests.map((_, i) => replies.find((r) => r.reply === String(i)) ?? {})
}

/** A member's QEMU end of its port: frames behind a 4-byte big-endian length. */
async function portPeer(path: string): Promise<{ socket: net.Socket; frames: Buffer[] }> {
  const socket = net.connect(path)
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  const peer = { socket, frames: [] as Buffer[] }
  let pending = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk])
    while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
      peer.frames.push(pending.subarray(4, 4 + pending.readUInt32BE(0)))
      pending = pending.subarray(4 + pending.readUInt32BE(0))
    }
  })
  return peer
}

function broadcastFrame(): Buffer {
  const frame = Buffer.concat([
    Buffer.alloc(6, 0xff),
    Buffer.from([2, 0, 0, 0, 0, 1, 8, 0]),
    Buffer.from('hi'),
  ])
  const header = Buffer.alloc(4)
  header.writeUInt32BE(frame.length)
  return Buffer.concat([header, frame])
}

const switchPid = (net: VmNetwork) => net.directory.readState()!.pid

describe('switch process: members and leases under races and failures', () => {
  test('a bind whose supervisor cannot be reached is refused and takes no lease: the switch still ends with its last handle', async () => {
    const handle = await VmNetwork.create()
    const pid = switchPid(handle)
    try {
      const client = await NetworkClient.connect(handle.directory.controlSocket, handle.name)
      await client.request({ op: 'join', member: 'ghost' })
      await expect(
        client.request({ op: 'bind', member: 'ghost', vmControl: '/nonexistent/control.sock', nic: 0 }),
      ).rejects.toThrow(/VM ghost's supervisor \(\/nonexistent\/control.sock\) cannot be reached: it exited/)
      expect(handle.directory.readState()).toMatchObject({ leases: 1, members: [] })
      client.close()
    } finally {
      await handle.close()
    }
    const gone = await pollUntil(() => !isAlive(pid), { timeoutMs: 10_000, everyMs: 50 })
    expect(gone, 'the switch exited with its last handle').toBe(true)
  })

  test('two joins at once cannot take one hostname, nor one member name', async () => {
    await using handle = await VmNetwork.create()
    const [a, b] = await rawRequests(handle.directory.controlSocket, [
      { op: 'join', member: 'a', hostname: 'db' },
      { op: 'join', member: 'b', hostname: 'db' },
    ])
    expect(a!.error).toBeUndefined()
    expect(b!.error).toMatch(/the name db is already taken on network .* by a/)
    const [c, d] = await rawRequests(handle.directory.controlSocket, [
      { op: 'join', member: 'c' },
      { op: 'join', member: 'c' },
    ])
    expect(c!.error).toBeUndefined()
    expect(d!.error).toMatch(/a VM named c is already a member/)
  })

  test('aliases given as a string are refused, not split into letters', async () => {
    await using handle = await VmNetwork.create()
    const [reply] = await rawRequests(handle.directory.controlSocket, [
      { op: 'join', member: 'a', aliases: 'db' },
    ])
    expect(reply!.error).toMatch(/aliases must be an array of names, e.g. aliases: \["db"\]/)
    await expect(handle.members()).resolves.toEqual([])
  })

  test('addresses go back to the pool: 245 joins and leaves, then the lowest free address', async () => {
    await using handle = await VmNetwork.create()
    const client = await NetworkClient.connect(handle.directory.controlSocket, handle.name)
    try {
      const first = await client.request({ op: 'join', member: 'first' })
      for (let i = 0; i < 245; i++) {
        await client.request({ op: 'join', member: `m${i}` })
        await client.request({ op: 'leave', member: `m${i}` })
      }
      const second = await client.request({ op: 'join', member: 'second' })
      expect(second.ip).not.toBe(first.ip)
      await client.request({ op: 'leave', member: 'first' })
      const third = await client.request({ op: 'join', member: 'third' })
      expect(third.ip).toBe(first.ip)
    } finally {
      client.close()
    }
  })

  test('a fractional jitter forwards frames; a delay past the cap is refused, by VmNetwork and the switch', async () => {
    await using handle = await VmNetwork.create()
    const client = await NetworkClient.connect(handle.directory.controlSocket, handle.name)
    try {
      const a = await client.request({ op: 'join', member: 'a' })
      const b = await client.request({ op: 'join', member: 'b' })
      const [peerA, peerB] = [await portPeer(a.socket as string), await portPeer(b.socket as string)]
      await handle.impair('a', { jitterMs: 0.5 })
      peerA.socket.write(broadcastFrame())
      const arrived = await pollUntil(() => peerB.frames.length === 1, { timeoutMs: 5_000, everyMs: 10 })
      expect(arrived, 'the frame reached b').toBe(true)
      expect(isAlive(switchPid(handle))).toBe(true)
      await expect(handle.impair('a', { delayMs: Number.POSITIVE_INFINITY })).rejects.toThrow(
        /delayMs=null is not valid/,
      )
      await expect(handle.impair('a', { delayMs: 2 ** 31 })).rejects.toThrow(/at most 60000 ms/)
      await expect(
        client.request({ op: 'impair', member: 'a', impairment: { delayMs: 50_000, jitterMs: 20_000 } }),
      ).rejects.toThrow(/at most 60000 ms/)
      peerA.socket.destroy()
      peerB.socket.destroy()
    } finally {
      client.close()
    }
  })

  test('a closed VmNetwork handle says so, while its network runs on', async () => {
    const name = `closed-${process.pid}`
    await using other = await VmNetwork.create({ name })
    const handle = await VmNetwork.create({ name })
    await handle.close()
    await expect(handle.members()).rejects.toThrow(/this VmNetwork handle was closed \(close\(\)/)
    await expect(other.members()).resolves.toEqual([])
  })

  test('create() starts a new switch when the one it found exits before the hold', async () => {
    // A "switch" that takes one connection and exits, as one whose last lease went between the
    // connect under the creation lock and the hold after it.
    const name = `dying-${process.pid}`
    const directory = new NetworkDirectory(name)
    mkdirSync(directory.path, { recursive: true, mode: 0o700 })
    const dying = net.createServer((socket) => {
      dying.close()
      socket.destroy()
    })
    await new Promise<void>((resolve) => dying.listen(directory.controlSocket, resolve))
    try {
      await using handle = await VmNetwork.create({ name })
      await expect(handle.members()).resolves.toEqual([])
      expect(isAlive(switchPid(handle))).toBe(true)
    } catch (error) {
      directory.remove() // the stand-in's: a real switch removes its own
      throw error
    } finally {
      dying.close()
    }
  })

  test('a switch that does not answer in time is killed, not left to remove a newer directory', async () => {
    const directory = new NetworkDirectory(`hung-${process.pid}`)
    const scratch = mkdtempSync(join(tmpdir(), 'vmctl-hung-switch-'))
    const mainPath = join(scratch, 'switch-main.mjs')
    writeFileSync(mainPath, 'setInterval(() => {}, 1000)\n')
    const running = () => pidsWithArgument(directory.path)
    try {
      await expect(startSwitch(directory, { timeoutMs: 1_000, mainPath })).rejects.toThrow(
        /did not start within 1 s/,
      )
      const gone = await pollUntil(() => running().length === 0, { timeoutMs: 5_000, everyMs: 50 })
      expect(gone, 'the hung switch process was killed').toBe(true)
    } finally {
      for (const pid of running()) process.kill(pid, 'SIGKILL')
      rmSync(scratch, { recursive: true, force: true })
    }
  })
})

/** Processes (not zombies) with this command-line argument. */
function pidsWithArgument(argument: string): number[] {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${entry}/stat`, 'utf8'))) continue
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(argument))
        pids.push(Number(entry))
    } catch {}
  }
  return pids
}
