import { InfoResponse } from '../generated/vmctl/agent/v1/agent.js'
import { keptWriterSerializer } from './kept-writer.js'

/** The fields of an `info()` answer that stay the same from call to call, and their bytes. */
interface SteadyParts {
  kernelRelease: string
  osRelease: string
  addresses: InfoResponse['addresses']
  hostname: string
  agentVersion: string
  /** Fields 1 and 2 (kernel, OS), encoded. */
  front: Uint8Array
  /** Fields 7, 8 and 9 (addresses, hostname, agent version), encoded. */
  back: Uint8Array
}

/** Field 3's tag and 8 bytes, 4's tag and up to 5, 5's and 6's tags and up to 8 bytes each (< 2^53). */
const MAX_CHANGING_BYTES = 9 + 6 + 9 + 9

/**
 * A serializer of `info()` answers that encodes only what changes between two calls (the uptime
 * and the memory figures) and copies the rest from the bytes it kept of the last answer: the
 * addresses (the same array while the kernel's tables are unchanged, guest-addresses.ts), the
 * names are encoded again only when one of them changed. The protobuf encoder
 * wrote a string field by a UTF-8 encode and a fork/join per address on every call: 50-100 µs
 * per answer in the guest under TCG (node -e, medians of 300), for ~240 bytes. The bytes are the
 * generated codec's, in its field order (info-encoding.test.ts). A message the fast path does not
 * take (a count that is not a whole number in range) goes to the kept writer, which throws as the
 * generated codec does.
 */
export function infoSerializer(): (message: InfoResponse) => Buffer {
  const generic = keptWriterSerializer(InfoResponse)
  let steady: SteadyParts | undefined
  return (message) => {
    const { cpus, memoryTotalBytes, memoryAvailableBytes } = message
    if (!isUint(cpus, 0xffffffff) || !isUint(memoryTotalBytes) || !isUint(memoryAvailableBytes))
      return generic(message)
    if (!steady || !sameSteadyFields(steady, message)) steady = steadyParts(message)
    const out = Buffer.allocUnsafe(steady.front.length + MAX_CHANGING_BYTES + steady.back.length)
    out.set(steady.front, 0)
    let at = steady.front.length
    // `!== 0`, as the generated encoder: a field at its default is not written (NaN is).
    if (message.uptimeSeconds !== 0) {
      out[at++] = (3 << 3) | 1
      at = out.writeDoubleLE(message.uptimeSeconds, at)
    }
    at = varintField(out, at, 4, cpus)
    at = varintField(out, at, 5, memoryTotalBytes)
    at = varintField(out, at, 6, memoryAvailableBytes)
    out.set(steady.back, at)
    return out.subarray(0, at + steady.back.length)
  }
}

function sameSteadyFields(kept: SteadyParts, message: InfoResponse): boolean {
  return (
    kept.addresses === message.addresses &&
    kept.hostname === message.hostname &&
    kept.osRelease === message.osRelease &&
    kept.kernelRelease === message.kernelRelease &&
    kept.agentVersion === message.agentVersion
  )
}

function steadyParts(message: InfoResponse): SteadyParts {
  const { kernelRelease, osRelease, addresses, hostname, agentVersion } = message
  const none = InfoResponse.create()
  return {
    kernelRelease,
    osRelease,
    addresses,
    hostname,
    agentVersion,
    front: InfoResponse.encode({ ...none, kernelRelease, osRelease }).finish(),
    back: InfoResponse.encode({ ...none, addresses, hostname, agentVersion }).finish(),
  }
}

function isUint(value: number, max = Number.MAX_SAFE_INTEGER): boolean {
  return Number.isInteger(value) && value >= 0 && value <= max
}

/** A varint field (wire type 0) unless it is 0, as the generated encoder writes it. */
function varintField(out: Buffer, at: number, field: number, value: number): number {
  if (value === 0) return at
  out[at++] = field << 3
  while (value >= 0x80) {
    out[at++] = (value % 0x80) | 0x80
    value = Math.floor(value / 0x80)
  }
  out[at++] = value
  return at
}
