import { BinaryWriter } from '@bufbuild/protobuf/wire'

/** What the serializer needs of a ts-proto message's functions. */
interface Encodes<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter
}

/**
 * A serializer of `fns`' messages that encodes each into one writer kept for the process, and
 * hands on finish()'s copy of it as a Buffer view. The generated serializer, `Buffer.from(encode(
 * value).finish())`, starts each message in a new writer (128 bytes, then grown by doubling with a
 * copy each time: an `info()` answer is a few hundred bytes), copies it out in finish() and again
 * in Buffer.from: the writer's allocations were 4% of the agent's time per `info()` under TCG
 * (docs/call-lane-costs.md). The bytes are the same. A writer left halfway by an encode that threw
 * is replaced.
 */
export function keptWriterSerializer<T>(fns: Encodes<T>): (message: T) => Buffer {
  let writer = new BinaryWriter()
  return (message) => {
    try {
      const bytes = fns.encode(message, writer).finish()
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    } catch (error) {
      writer = new BinaryWriter()
      throw error
    }
  }
}
