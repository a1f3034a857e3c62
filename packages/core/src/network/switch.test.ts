import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { pollUntil, sleep } from '../util/timing.js'
import { Switch } from './switch.js'

// The switch with real Unix sockets and QEMU's framing (4-byte big-endian length, then the
// frame), each "member" a socket as its QEMU would hold. network.vm.test.ts has the real VMs.
const mac = (n: number) => Buffer.from([2, 0, 0, 0, 0, n])
const BROADCAST = Buffer.alloc(6, 0xff)

class FakeNic {
  received: Buffer[] = []
  private pending = Buffer.alloc(0)
  private constructor(
    readonly socket: net.Socket,
    readonly n: number,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.pending = Buffer.concat([this.pending, chunk])
      while (this.pending.length >= 4 && this.pending.length >= 4 + this.pending.readUInt32BE(0)) {
        const length = this.pending.readUInt32BE(0)
        this.received.push(this.pending.subarray(4, 4 + length))
        this.pending = this.pending.subarray(4 + length)
      }
    })
  }
  static connect(path: string, n: number): Promise<FakeNic> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(path, () => resolve(new FakeNic(socket, n)))
      socket.once('error', reject)
    })
  }
  send(to: Buffer, payload: string): void {
    const frame = Buffer.concat([to, mac(this.n), Buffer.from([0x08, 0x00]), Buffer.from(payload)])
    const header = Buffer.alloc(4)
    header.writeUInt32BE(frame.length)
    this.socket.write(Buffer.concat([header, frame]))
  }
  payloads(): string[] {
    return this.received.map((f) => f.subarray(14).toString())
  }
}

describe('switch: frames between member ports', () => {
  let dir: string
  let sw: Switch
  let nics: FakeNic[]
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vmctl-switch-'))
    sw = new Switch()
    nics = []
    for (const n of [1, 2, 3]) {
      await sw.addPort(`m${n}`, join(dir, `${n}.sock`))
      nics.push(await FakeNic.connect(join(dir, `${n}.sock`), n))
    }
    // Each NIC says hello once (a broadcast), so the switch learns every MAC.
    for (const nic of nics) nic.send(BROADCAST, `hello from ${nic.n}`)
    await pollUntil(() => nics.every((nic) => nic.received.length === 2), { timeoutMs: 2_000, everyMs: 5 })
    for (const nic of nics) nic.received = []
  })
  afterEach(() => {
    for (const nic of nics) nic.socket.destroy()
    sw.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const [one, two, three] = [0, 1, 2]

  test('a broadcast reaches every other port; a learnt unicast only its owner', async () => {
    nics[one]!.send(mac(2), 'to two')
    await pollUntil(() => nics[two]!.received.length === 1, { timeoutMs: 2_000, everyMs: 5 })
    await sleep(50)
    expect(nics[two]!.payloads()).toEqual(['to two'])
    expect(nics[three]!.received).toEqual([])
    expect(nics[one]!.received).toEqual([])
  })

  test('a partition drops frames across groups only; heal lets them through', async () => {
    sw.partition([['m1', 'm2'], ['m3']])
    nics[one]!.send(BROADCAST, 'p')
    nics[three]!.send(mac(1), 'from three')
    await pollUntil(() => nics[two]!.received.length === 1, { timeoutMs: 2_000, everyMs: 5 })
    await sleep(50)
    expect(nics[three]!.received).toEqual([])
    expect(nics[one]!.received).toEqual([])
    sw.heal()
    nics[three]!.send(mac(1), 'healed')
    await pollUntil(() => nics[one]!.received.length === 1, { timeoutMs: 2_000, everyMs: 5 })
    expect(nics[one]!.payloads()).toEqual(['healed'])
  })

  test('a disconnected member neither sends nor receives', async () => {
    sw.setConnected('m2', false)
    nics[one]!.send(mac(2), 'lost')
    nics[two]!.send(mac(1), 'lost too')
    nics[three]!.send(mac(1), 'arrives')
    await pollUntil(() => nics[one]!.received.length === 1, { timeoutMs: 2_000, everyMs: 5 })
    await sleep(50)
    expect(nics[one]!.payloads()).toEqual(['arrives'])
    expect(nics[two]!.received).toEqual([])
  })

  test('delay holds a frame back; a partition set meanwhile drops it; loss 100% drops all', async () => {
    sw.impair('m1', { delayMs: 150 })
    const sent = performance.now()
    nics[one]!.send(mac(2), 'late')
    await pollUntil(() => nics[two]!.received.length === 1, { timeoutMs: 2_000, everyMs: 5 })
    expect(performance.now() - sent).toBeGreaterThanOrEqual(140)

    nics[one]!.send(mac(3), 'in flight')
    sw.partition([['m1'], ['m3']])
    await sleep(300)
    expect(nics[three]!.received).toEqual([])
    sw.heal()

    sw.impair('m1', { lossPercent: 100 })
    for (let i = 0; i < 20; i++) nics[one]!.send(mac(2), 'x')
    await sleep(100)
    expect(nics[two]!.received.length).toBe(1)
    expect(sw.states().find((s) => s.member === 'm1')?.framesDropped).toBe(21)
  })

  test('a capture writes every frame that enters, the dropped ones too, as a pcap file', async () => {
    const file = join(dir, 'trace.pcap')
    await sw.startCapture(file)
    await expect(sw.startCapture(join(dir, 'other.pcap'))).rejects.toThrow(/a capture is running already/)
    nics[one]!.send(mac(2), 'first')
    sw.partition([['m1'], ['m3']])
    nics[one]!.send(mac(3), 'dropped by the partition')
    await pollUntil(() => nics[two]!.received.length === 1, { timeoutMs: 2_000, everyMs: 5 })
    await sleep(50)
    expect(sw.stopCapture()).toBe(2)
    const pcap = readFileSync(file)
    expect(pcap.readUInt32LE(0)).toBe(0xa1b2c3d4)
    expect(pcap.readUInt32LE(20)).toBe(1) // Ethernet
    const frames: string[] = []
    for (let at = 24; at < pcap.length; ) {
      const length = pcap.readUInt32LE(at + 8)
      expect(pcap.readUInt32LE(at + 12)).toBe(length)
      frames.push(pcap.subarray(at + 16 + 14, at + 16 + length).toString())
      at += 16 + length
    }
    expect(frames).toEqual(['first', 'dropped by the partition'])
    expect(() => sw.stopCapture()).toThrow(/no capture is running/)
    await expect(sw.startCapture(join(dir, 'no/such/dir/x.pcap'))).rejects.toThrow(/ENOENT/)

    // Not stopped: the switch's end (a process that exits at once after it) leaves the file whole.
    await sw.startCapture(file)
    nics[two]!.send(mac(1), 'before the end')
    await pollUntil(() => nics[one]!.received.length === 1, { timeoutMs: 2_000, everyMs: 5 })
    sw.close()
    expect(
      readFileSync(file)
        .subarray(24 + 16 + 14)
        .toString(),
    ).toBe('before the end')
  })
})
