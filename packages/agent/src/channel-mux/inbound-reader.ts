import type { SessionChannel } from './channel-open.js'
import { decodeFrame, FRAME_HEADER_BYTES, type Frame, peekDataHeader } from './frame-codec.js'
import { type HandshakeLine, MAX_LINE_BYTES, parseHandshakeLine } from './handshake-lines.js'

/** What an InboundReader finds in the bytes from the peer, for its session to act on. */
export interface InboundHandlers {
  line(line: HandshakeLine): void
  /** A whole frame (a DATA frame's payload goes to dataChannel's channel instead, as it arrives). */
  frame(frame: Frame): void
  /** The channel a DATA frame is for (undefined: its payload is dropped). */
  dataChannel(id: number): SessionChannel | undefined
  /**
   * Bytes that are not a frame where one should start. The reader is back to reading lines, with
   * any partial frame dropped. Returns false when the session let go of its transport: the rest of
   * the bytes are not read.
   */
  lostSync(reason: string): boolean
}

/**
 * One session's incoming bytes: handshake lines until the session says frames start
 * (expectFrames), then frames, back to lines when the bytes stop being frames. The session decides
 * the mode; the reader only splits the bytes.
 */
export class InboundReader {
  private mode: 'lines' | 'frames' = 'lines'
  private inbound: Buffer = Buffer.alloc(0)
  /** Bytes of the current DATA frame's payload still to come, and the channel they belong to. */
  private dataRemaining = 0
  private dataChannel: SessionChannel | undefined

  constructor(private readonly handlers: InboundHandlers) {}

  /**
   * Reads handshake lines from here on: a new handshake starts. What is left of a DATA frame under
   * way is the old session's, and goes with it: a guest agent that died mid-frame (the host's
   * resetPeer) sends the rest of no frame, and the next session's first frames are not its rest.
   */
  expectLines(): void {
    this.mode = 'lines'
    this.dataRemaining = 0
  }

  /** Reads frames from the next byte on. */
  expectFrames(): void {
    this.mode = 'frames'
  }

  /** Drops unread bytes and any partial frame, and reads lines (a new transport, a park). */
  clear(): void {
    this.mode = 'lines'
    this.inbound = Buffer.alloc(0)
    this.dataRemaining = 0
  }

  readonly push = (chunk: Buffer): void => {
    // Only a few leftover bytes (a partial header or control frame) are ever joined to new data.
    this.inbound = this.inbound.length === 0 ? chunk : Buffer.concat([this.inbound, chunk])
    this.pump()
  }

  // A handler may change the mode or clear the bytes (the session acts on a line or a frame at
  // once), so each turn reads the reader's state afresh.
  private pump(): void {
    while (this.inbound.length > 0) {
      if (this.mode === 'frames' && this.dataRemaining > 0) {
        // Payload of a DATA frame goes straight to its channel, piece by piece as it arrives:
        // virtio-serial reads return at most 4 KB, and reassembling 64 KB frames from them cost
        // eight copies per byte in a guest where every copy is emulated.
        const take = Math.min(this.dataRemaining, this.inbound.length)
        const piece = this.inbound.subarray(0, take)
        this.inbound = this.inbound.subarray(take)
        this.dataRemaining -= take
        this.dataChannel?.receive(piece)
        continue
      }
      if (this.mode === 'frames') {
        const header = peekDataHeader(this.inbound)
        if (header) {
          this.inbound = this.inbound.subarray(FRAME_HEADER_BYTES)
          this.dataRemaining = header.length
          this.dataChannel = this.handlers.dataChannel(header.channel)
          continue
        }
        const step = decodeFrame(this.inbound)
        if (step.kind === 'incomplete') return
        if (step.kind === 'lost-sync') {
          this.mode = 'lines'
          this.dataRemaining = 0
          if (!this.handlers.lostSync('unexpected bytes from the peer')) return
          continue
        }
        this.inbound = step.rest
        this.handlers.frame(step.frame)
      } else {
        const newline = this.inbound.indexOf(0x0a)
        if (newline < 0) {
          if (this.inbound.length > MAX_LINE_BYTES) this.inbound = this.inbound.subarray(-MAX_LINE_BYTES)
          return
        }
        const line = this.inbound.subarray(0, newline).toString('latin1')
        this.inbound = this.inbound.subarray(newline + 1)
        const parsed = parseHandshakeLine(line)
        if (parsed) this.handlers.line(parsed)
      }
    }
  }
}
