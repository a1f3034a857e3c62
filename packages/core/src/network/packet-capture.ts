import { once } from 'node:events'
import { createWriteStream, type WriteStream } from 'node:fs'

/** pcap's classic file format: the header once, then each frame behind its own 16-byte header. */
const PCAP_MAGIC = 0xa1b2c3d4
const LINKTYPE_ETHERNET = 1
const SNAPLEN = 65_535

/**
 * A network's frames written to a pcap file (`net.capture(path)`), for Wireshark or tcpdump -r:
 * every frame a member sends, as it enters the switch, so also those that a partition, a loss or a
 * down link then drops (what `tcpdump` on the sender's NIC shows). Written through a buffered
 * stream: the switch never waits on the disk.
 */
export class PacketCapture {
  private readonly out: WriteStream
  private failure: Error | undefined
  frames = 0

  constructor(readonly path: string) {
    this.out = createWriteStream(path, { flags: 'w', mode: 0o644 })
    this.out.on('error', (error) => {
      this.failure = error
    })
    const header = Buffer.alloc(24)
    header.writeUInt32LE(PCAP_MAGIC, 0)
    header.writeUInt16LE(2, 4) // version 2.4
    header.writeUInt16LE(4, 6)
    header.writeUInt32LE(SNAPLEN, 16)
    header.writeUInt32LE(LINKTYPE_ETHERNET, 20)
    this.out.write(header)
  }

  /** Opened (or refused: a directory that does not exist, no permission). */
  async opened(): Promise<void> {
    if (this.failure) throw this.failure
    await Promise.race([
      once(this.out, 'open'),
      once(this.out, 'error').then(([error]) => Promise.reject(error)),
    ])
  }

  record(frame: Buffer): void {
    if (this.failure) return
    const nowMs = performance.timeOrigin + performance.now() // microseconds, as tcpdump prints them
    const header = Buffer.alloc(16)
    header.writeUInt32LE(Math.floor(nowMs / 1000), 0)
    header.writeUInt32LE(Math.min(999_999, Math.floor((nowMs % 1000) * 1000)), 4)
    header.writeUInt32LE(Math.min(frame.length, SNAPLEN), 8)
    header.writeUInt32LE(frame.length, 12)
    // The frame's bytes belong to the port's read buffer: the stream keeps its own copy.
    this.out.write(Buffer.concat([header, frame.subarray(0, SNAPLEN)]))
    this.frames++
  }

  /** Flushes and closes the file; rejects with the write's error if one failed. */
  async stop(): Promise<number> {
    if (!this.out.closed) {
      this.out.end()
      await once(this.out, 'close').catch(() => {})
    }
    if (this.failure) throw this.failure
    return this.frames
  }
}
