/**
 * Frames of the channel multiplexer. One virtio-serial port (or one vsock connection) carries many
 * independent byte channels, each holding one HTTP/2 connection, so several host processes can
 * talk to one agent at once.
 *
 * A frame: magic (2 bytes) | type (1) | channel id (u32 BE) | payload length (u32 BE) | payload.
 * The magic lets a reader notice that it has lost sync (a restarted agent, a reconnected host, a
 * restored snapshot) and fall back to the line handshake in handshake-lines.ts.
 */
export const FRAME_MAGIC_0 = 0xe7
export const FRAME_MAGIC_1 = 0x4d
export const FRAME_HEADER_BYTES = 11
/** Larger payloads are split; keeps one busy channel from starving the others. */
export const MAX_FRAME_PAYLOAD = 64 * 1024

export enum FrameType {
  /** host → guest: a new channel. */
  Open = 1,
  Data = 2,
  /** The sender will write no more on this channel (half close). */
  End = 3,
  /** The channel is gone in both directions. */
  Close = 4,
  /** Payload is a u32: the receiver consumed that many bytes, the sender may send that many more. */
  Window = 5,
  /**
   * host → guest: the session ends here, with the transport left connected. The guest drops its
   * channels, answers `PARKED nonce` (the payload) and waits, idle, for the next HELLO. Sent before
   * a snapshot: a guest restored from it wakes on the new host's first bytes instead of polling a
   * port with no host behind it.
   */
  Park = 6,
}

export interface Frame {
  type: FrameType
  channel: number
  payload: Buffer
}

export function encodeFrame(type: FrameType, channel: number, payload: Buffer = EMPTY): Buffer {
  const header = encodeFrameHeader(type, channel, payload.length)
  return payload.length === 0 ? header : Buffer.concat([header, payload])
}

export function encodeFrameHeader(type: FrameType, channel: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES)
  header[0] = FRAME_MAGIC_0
  header[1] = FRAME_MAGIC_1
  header[2] = type
  header.writeUInt32BE(channel, 3)
  header.writeUInt32BE(length, 7)
  return header
}

export function encodeWindow(channel: number, bytes: number): Buffer {
  const payload = Buffer.allocUnsafe(4)
  payload.writeUInt32BE(bytes, 0)
  return encodeFrame(FrameType.Window, channel, payload)
}

const EMPTY = Buffer.alloc(0)

export type DecodeStep =
  | { kind: 'frame'; frame: Frame; rest: Buffer }
  | { kind: 'incomplete' }
  | { kind: 'lost-sync'; rest: Buffer }

/** Takes one frame off the front of `buf`. */
export function decodeFrame(buf: Buffer): DecodeStep {
  if (buf.length >= 1 && buf[0] !== FRAME_MAGIC_0) return { kind: 'lost-sync', rest: buf }
  if (buf.length >= 2 && buf[1] !== FRAME_MAGIC_1) return { kind: 'lost-sync', rest: buf }
  if (buf.length >= 3 && (buf[2]! < FrameType.Open || buf[2]! > FrameType.Park)) {
    return { kind: 'lost-sync', rest: buf }
  }
  if (buf.length < FRAME_HEADER_BYTES) return { kind: 'incomplete' }
  const length = buf.readUInt32BE(7)
  if (length > MAX_FRAME_PAYLOAD) return { kind: 'lost-sync', rest: buf }
  if (buf.length < FRAME_HEADER_BYTES + length) return { kind: 'incomplete' }
  return {
    kind: 'frame',
    frame: {
      type: buf[2] as FrameType,
      channel: buf.readUInt32BE(3),
      payload: buf.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length),
    },
    rest: buf.subarray(FRAME_HEADER_BYTES + length),
  }
}

/** The header of a DATA frame at the front of `buf`, without waiting for its payload. */
export function peekDataHeader(buf: Buffer): { channel: number; length: number } | undefined {
  if (
    buf.length < FRAME_HEADER_BYTES ||
    buf[0] !== FRAME_MAGIC_0 ||
    buf[1] !== FRAME_MAGIC_1 ||
    buf[2] !== FrameType.Data
  ) {
    return undefined
  }
  const length = buf.readUInt32BE(7)
  if (length > MAX_FRAME_PAYLOAD) return undefined
  return { channel: buf.readUInt32BE(3), length }
}
