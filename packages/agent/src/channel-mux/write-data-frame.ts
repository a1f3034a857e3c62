import type { Writable } from 'node:stream'
import { encodeFrameHeader, FrameType } from './frame-codec.js'

/** DATA frames up to this size go out as one buffer (header copied in front of the payload). */
const COPY_FRAME_BYTES = 16 * 1024

/** Writes one DATA frame of `channel` to `transport`; returns what `write` returned (false: full). */
export function writeDataFrame(transport: Writable, channel: number, payload: Buffer): boolean {
  const header = encodeFrameHeader(FrameType.Data, channel, payload.length)
  if (payload.length <= COPY_FRAME_BYTES) {
    // One write: a virtio-serial port has no vectored write, so the kernel turns a writev into
    // a write, and a transfer to the host, per piece.
    return transport.write(Buffer.concat([header, payload], header.length + payload.length))
  }
  // Large payloads go in a vectored write without a copy: one more transfer costs less than
  // copying them in an emulated guest.
  transport.cork()
  transport.write(header)
  const ok = transport.write(payload)
  transport.uncork()
  return ok
}
