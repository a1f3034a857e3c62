import type { Writable } from 'node:stream'
import { HIGH_WATER_BYTES } from './call-channel.js'

/**
 * A pull's read-ahead reuses a chunk's buffer once the chunk after it was written and the call
 * drained (ChunkBuffers in guest/file-send.ts): the bytes a transport still holds after it said
 * its writes were taken must then all be the last chunk's. A call drains only after a write of
 * more than HIGH_WATER_BYTES (call-channel.ts), and the transport holds less than its
 * writableHighWaterMark: so that mark may not exceed the call's, or a buffer still queued in the
 * transport would be refilled with the next chunk and sent as garbage.
 */
export function assertTransportHighWater(transport: Writable): void {
  const mark = transport.writableHighWaterMark
  if (mark > HIGH_WATER_BYTES)
    throw new Error(
      `a multiplexer transport may hold at most ${HIGH_WATER_BYTES} bytes before it asks to wait (its writableHighWaterMark is ${mark}): a pull's reused buffers rely on it; make the transport with a smaller highWaterMark`,
    )
}
