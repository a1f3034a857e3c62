import { AgentService, InfoResponse, PullResponse, PushRequest } from '../generated/vmctl/agent/v1/agent.js'
import { keptWriterSerializer } from './kept-writer.js'

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

const serializePullHead = keptWriterSerializer(PullResponse)

function serializePullResponse(message: Encoded): Buffer {
  return message[ENCODED] ?? serializePullHead(message)
}

/**
 * The bytes of a message that is only field 2 (`bytes data`), as a view of `buffer`; undefined
 * for any other message (a header, a stat), which the generated codec decodes.
 */
function dataView(buffer: Buffer): Buffer | undefined {
  if (buffer[0] !== DATA_TAG) return undefined
  let length = 0
  let shift = 0
  let offset = 1
  while (offset < buffer.length && offset <= 5) {
    const byte = buffer[offset++]!
    length += (byte & 0x7f) * 2 ** shift
    shift += 7
    if (byte < 0x80) return offset + length === buffer.length ? buffer.subarray(offset) : undefined
  }
  return undefined
}

/** A pushed data message's bytes as a view of the received buffer (grpc-js never reuses it). */
function deserializePushRequest(buffer: Buffer): PushRequest {
  const data = dataView(buffer)
  return data ? { kind: { $case: 'data', value: data } } : PushRequest.decode(buffer)
}

/**
 * A pulled data message's bytes as a view of the received buffer, on the host: the generated
 * codec copies every pulled MiB into a new buffer (Buffer.from), a MiB of fresh pages each time.
 * Neither client reuses what it hands to a deserializer.
 */
function deserializePullResponse(buffer: Buffer): PullResponse {
  const data = dataView(buffer)
  return data ? { kind: { $case: 'data', value: data } } : PullResponse.decode(buffer)
}

/**
 * The agent's service with the file codecs above in place of the generated ones: the guest's
 * servers use its serializer of pulls and deserializer of pushes, the host's lane client its
 * deserializer of pulls. `info()`'s answer and a pull's stat are encoded in a kept writer
 * (kept-writer.ts).
 */
export function agentServiceWithFileCodecs(): typeof AgentService {
  return {
    ...AgentService,
    pull: {
      ...AgentService.pull,
      responseSerialize: serializePullResponse,
      responseDeserialize: deserializePullResponse,
    },
    push: { ...AgentService.push, requestDeserialize: deserializePushRequest },
    info: { ...AgentService.info, responseSerialize: keptWriterSerializer(InfoResponse) },
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
