import { AgentService, PullResponse, PushRequest } from '../generated/vmctl/agent/v1/agent.js'

/**
 * The file bytes of Pull and Push, (de)serialized without copies.
 *
 * The generated codecs copy every data message three times on the way out (BinaryWriter's chunk,
 * finish(), Buffer.from) and once on the way in (Buffer.from of the reader's bytes). On a host that
 * is noise; in a guest under TCG, where every copy is emulated, it was a large share of a pull's
 * CPU time. These produce and accept the same protobuf bytes: the wire format does not change.
 */

/** Room before a chunk's bytes for the field's tag (1 byte) and its length (a varint, ≤ 5 bytes). */
export const DATA_PREFIX_BYTES = 6
/** Tag of `bytes data = 2` in PullResponse and PushRequest: field 2, wire type 2 (length-delimited). */
const DATA_TAG = (2 << 3) | 2
const ENCODED = Symbol('encoded')

type Encoded = PullResponse & { [ENCODED]?: Buffer }

/**
 * A data message for `buffer[DATA_PREFIX_BYTES, DATA_PREFIX_BYTES + length)`, its protobuf bytes
 * written in place in front of the data (the room a chunk is read into, see readChunk), so that
 * serializing it copies nothing.
 */
export function dataMessage(buffer: Buffer, length: number): PullResponse {
  const varint = varintBytes(length)
  const start = DATA_PREFIX_BYTES - 1 - varint
  buffer[start] = DATA_TAG
  writeVarint(buffer, start + 1, length)
  const data = buffer.subarray(DATA_PREFIX_BYTES, DATA_PREFIX_BYTES + length)
  const message: Encoded = { kind: { $case: 'data', value: data } }
  message[ENCODED] = buffer.subarray(start, DATA_PREFIX_BYTES + length)
  return message
}

function serializePullResponse(message: Encoded): Buffer {
  return message[ENCODED] ?? Buffer.from(PullResponse.encode(message).finish())
}

/** A data message's bytes as a view of the received buffer (grpc-js never reuses it). */
function deserializePushRequest(buffer: Buffer): PushRequest {
  if (buffer[0] === DATA_TAG) {
    let length = 0
    let shift = 0
    let offset = 1
    while (offset < buffer.length && offset <= 5) {
      const byte = buffer[offset++]!
      length += (byte & 0x7f) * 2 ** shift
      shift += 7
      if (byte < 0x80) {
        if (offset + length === buffer.length)
          return { kind: { $case: 'data', value: buffer.subarray(offset) } }
        break
      }
    }
  }
  return PushRequest.decode(buffer)
}

/** The agent's service with the file codecs above in place of the generated ones. */
export function agentServiceWithFileCodecs(): typeof AgentService {
  return {
    ...AgentService,
    pull: { ...AgentService.pull, responseSerialize: serializePullResponse },
    push: { ...AgentService.push, requestDeserialize: deserializePushRequest },
  }
}

function varintBytes(value: number): number {
  let bytes = 1
  while (value >= 0x80) {
    value = Math.floor(value / 128)
    bytes++
  }
  return bytes
}

function writeVarint(buffer: Buffer, offset: number, value: number): void {
  while (value >= 0x80) {
    buffer[offset++] = (value & 0x7f) | 0x80
    value = Math.floor(value / 128)
  }
  buffer[offset] = value
}
