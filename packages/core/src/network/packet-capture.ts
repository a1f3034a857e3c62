import { closeSync, openSync, writeSync } from 'node:fs'

/** pcap's classic file format: the header once, then each frame behind its own 16-byte header. */
const PCAP_MAGIC = 0xa1b2c3d4
const LINKTYPE_ETHERNET = 1
const SNAPLEN = 65_535

/**
 * A network's frames written to a pcap file (`net.capture(path)`), for Wireshark or tcpdump -r:
 * every frame a member sends, as it enters the switch, so also those that a partition, a loss or a
 * down link then drops (what `tcpdump` on the sender's NIC shows). Each frame is one write to the
 * page cache, so that the file is whole whenever the switch ends, even at once (process.exit).
 * A write that fails (a full disk) ends the capture; `stop()` then says why.
 */
export class PacketCapture {
  private fd: number | undefined
  private failure: Error | undefined
  frames = 0

  /** Opens (truncates) the file and writes its header; throws when it cannot. */
  constructor(readonly path: string) {
    const fd = openSync(path, 'w', 0o644)
    const header = Buffer.alloc(24)
    header.writeUInt32LE(PCAP_MAGIC, 0)
    header.writeUInt16LE(2, 4) // version 2.4
    header.writeUInt16LE(4, 6)
    header.writeUInt32LE(SNAPLEN, 16)
    header.writeUInt32LE(LINKTYPE_ETHERNET, 20)
    try {
      writeSync(fd, header)
    } catch (error) {
      closeSync(fd)
      throw error
    }
    this.fd = fd
  }

  record(frame: Buffer): void {
    if (this.fd === undefined) return
    const nowMs = performance.timeOrigin + performance.now() // microseconds, as tcpdump prints them
    const header = Buffer.alloc(16)
    header.writeUInt32LE(Math.floor(nowMs / 1000), 0)
    header.writeUInt32LE(Math.min(999_999, Math.floor((nowMs % 1000) * 1000)), 4)
    header.writeUInt32LE(Math.min(frame.length, SNAPLEN), 8)
    header.writeUInt32LE(frame.length, 12)
    try {
      writeSync(this.fd, Buffer.concat([header, frame.subarray(0, SNAPLEN)]))
      this.frames++
    } catch (error) {
      this.failure = error as Error
      this.close()
    }
  }

  /** Closes the file; resolves with how many frames it holds, or rejects with why a write failed. */
  stop(): number {
    this.close()
    if (this.failure) throw new Error(`the capture to ${this.path} stopped early: ${this.failure.message}`)
    return this.frames
  }

  private close(): void {
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
  }
}
