/**
 * The framing of an agent call on its own multiplexer channel ("the call lane"), shared by the
 * guest's server and the host's client. A call is one channel whose service line is
 * `rpc <gRPC method path>`; on it both sides send gRPC's length-prefixed messages (a flag byte, 0
 * for a message, then the payload's length as 4 bytes big-endian, then the payload: the same
 * protobuf bytes as over gRPC). A streaming client sends an end frame (flag END_FLAG, no
 * payload) after its last message; the server answers with messages, then one status frame (flag
 * STATUS_FLAG; payload: the gRPC status code as 4 bytes big-endian, then the details in UTF-8);
 * the client then closes the channel. The end of the channel itself from the client's side, or
 * its reset, before the status is a cancellation: the client's half-close travels in a frame and
 * not as the channel's end because the host's side of a call is a Unix socket to the supervisor,
 * where a client that went away (cancelled, or its process died) reads the same as one that
 * half-closed, and the first must stop the call in the guest. No HTTP/2, no headers: the
 * multiplexer already gives each call a stream with reset and flow control.
 */

/** How a channel's service line names a call: `rpc /vmctl.agent.v1.Agent/Info`. */
export const LANE_SERVICE_PREFIX = 'rpc '
export const MESSAGE_FLAG = 0
export const STATUS_FLAG = 0x80
export const END_FLAG = 0x40
export const LANE_PREFIX_BYTES = 5
/** The largest frame either side accepts (the gRPC server's receive limit). */
export const MAX_LANE_MESSAGE_BYTES = 64 * 1024 * 1024
/** Below this a message goes out as one buffer (one channel write); above, prefix and payload apart. */
const JOIN_BELOW_BYTES = 16 * 1024

export type LaneFrame =
  | { kind: 'message'; payload: Buffer }
  | { kind: 'status'; code: number; details: string }
  | { kind: 'end' }

function prefix(flag: number, length: number): Buffer {
  const head = Buffer.allocUnsafe(LANE_PREFIX_BYTES)
  head[0] = flag
  head.writeUInt32BE(length, 1)
  return head
}

/**
 * A message's frame as the buffers to write. A large payload (a file chunk) is not copied behind
 * its prefix: two writes of the channel, each its own multiplexer frame, cost less than the copy.
 */
export function encodeMessage(payload: Buffer): Buffer[] {
  const head = prefix(MESSAGE_FLAG, payload.length)
  if (payload.length >= JOIN_BELOW_BYTES) return [head, payload]
  return [Buffer.concat([head, payload])]
}

/** The client's last message was sent. */
export function encodeEnd(): Buffer {
  return prefix(END_FLAG, 0)
}

export function encodeStatus(code: number, details: string): Buffer {
  const text = Buffer.from(details, 'utf8')
  const frame = Buffer.allocUnsafe(LANE_PREFIX_BYTES + 4 + text.length)
  frame[0] = STATUS_FLAG
  frame.writeUInt32BE(4 + text.length, 1)
  frame.writeUInt32BE(code, LANE_PREFIX_BYTES)
  text.copy(frame, LANE_PREFIX_BYTES + 4)
  return frame
}

/**
 * Cuts a byte stream into frames. A frame inside one received chunk is a view of it (a pushed or
 * pulled MiB is not copied); only a frame split across chunks is joined.
 */
export class LaneFrameReader {
  private chunks: Buffer[] = []
  private buffered = 0

  /** The frames completed by `chunk`; throws on a frame no peer of ours sends. */
  push(chunk: Buffer): LaneFrame[] {
    this.chunks.push(chunk)
    this.buffered += chunk.length
    const frames: LaneFrame[] = []
    while (this.buffered >= LANE_PREFIX_BYTES) {
      const head = this.peek(LANE_PREFIX_BYTES)
      const flag = head[0]!
      const length = head.readUInt32BE(1)
      if (flag !== MESSAGE_FLAG && flag !== STATUS_FLAG && flag !== END_FLAG)
        throw new Error(`bad call frame flag ${flag}`)
      if (length > MAX_LANE_MESSAGE_BYTES) throw new Error(`call frame of ${length} bytes is too large`)
      if (this.buffered < LANE_PREFIX_BYTES + length) break
      this.take(LANE_PREFIX_BYTES)
      const payload = this.take(length)
      if (flag === MESSAGE_FLAG) frames.push({ kind: 'message', payload })
      else if (flag === END_FLAG) frames.push({ kind: 'end' })
      else {
        if (payload.length < 4) throw new Error('short status frame')
        frames.push({ kind: 'status', code: payload.readUInt32BE(0), details: payload.toString('utf8', 4) })
      }
    }
    return frames
  }

  private peek(bytes: number): Buffer {
    const first = this.chunks[0]!
    if (first.length >= bytes) return first
    this.chunks = [Buffer.concat(this.chunks)]
    return this.chunks[0]!
  }

  private take(bytes: number): Buffer {
    if (bytes === 0) return Buffer.alloc(0) // an empty message ({} of InfoRequest)
    this.buffered -= bytes
    const first = this.chunks[0]!
    if (first.length >= bytes) {
      if (first.length === bytes) this.chunks.shift()
      else this.chunks[0] = first.subarray(bytes)
      return first.subarray(0, bytes)
    }
    const parts: Buffer[] = []
    let left = bytes
    while (left > 0) {
      const chunk = this.chunks[0]!
      if (chunk.length <= left) {
        parts.push(chunk)
        this.chunks.shift()
        left -= chunk.length
      } else {
        parts.push(chunk.subarray(0, left))
        this.chunks[0] = chunk.subarray(left)
        left = 0
      }
    }
    return Buffer.concat(parts, bytes)
  }
}
