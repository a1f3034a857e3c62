import { crc32, gunzipSync } from 'node:zlib'
import { unxz } from './xz-stream.js'

/**
 * The uncompressed vmlinux ELF inside a bzImage. QEMU boots an ELF through its PVH entry point,
 * which skips the in-guest decompressor (about 0.9 s of a TCG boot, see docs/boot-recipe.md).
 *
 * The setup header says where the compressed kernel is: payload_offset (0x248) and payload_length
 * (0x24c), relative to the protected-mode code that starts after the (setup_sects + 1) sectors.
 * Debian compresses it with `xz --check=crc32 --x86 --lzma2`: an x86 BCJ filter before LZMA2.
 * xz-decompress has no BCJ decoder, so each xz block is re-framed with LZMA2 alone, decompressed,
 * and the BCJ transform is undone here; the block's original CRC32 then checks the result.
 */
export async function extractVmlinux(bzImage: Buffer): Promise<Buffer> {
  if (bzImage.length < 0x250 || bzImage.toString('latin1', 0x202, 0x206) !== 'HdrS')
    throw new Error('not a bzImage (no "HdrS" setup header at 0x202)')
  const setupSectors = bzImage[0x1f1] || 4
  const start = (setupSectors + 1) * 512 + bzImage.readUInt32LE(0x248)
  const payload = bzImage.subarray(start, start + bzImage.readUInt32LE(0x24c))
  let vmlinux: Buffer
  if (payload.subarray(0, 6).equals(XZ_MAGIC)) vmlinux = await decodeXz(payload)
  else if (payload[0] === 0x1f && payload[1] === 0x8b) vmlinux = gunzipSync(payload)
  else
    throw new Error(
      `the bzImage's payload is compressed with a format vmctl does not unpack (first bytes ${payload.subarray(0, 4).toString('hex')}; xz and gzip are supported)`,
    )
  if (vmlinux.readUInt32BE(0) !== 0x7f454c46) throw new Error('the bzImage payload is not an ELF vmlinux')
  return vmlinux
}

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])
const FILTER_X86 = 0x04n
const FILTER_LZMA2 = 0x21n
const CHECK_SIZES = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64]

interface XzBlock {
  offset: number
  headerSize: number
  compressedSize: number
  uncompressedSize: number
  filters: Array<{ id: bigint; props: Buffer }>
}

/** One xz stream, possibly followed by other bytes (the kernel appends the uncompressed size). */
export async function decodeXz(stream: Buffer): Promise<Buffer> {
  const checkType = stream[7]! & 0x0f
  const checkSize = CHECK_SIZES[checkType]!
  const blocks = readBlocks(stream, checkSize)
  const lzma2Only = blocks.map((block) => block.filters.filter((f) => f.id !== FILTER_X86))
  for (const filters of lzma2Only) {
    if (filters.length !== 1 || filters[0]!.id !== FILTER_LZMA2)
      throw new Error('the kernel payload uses an xz filter other than x86 BCJ and LZMA2')
  }
  const output = await unxz(reframe(stream, blocks, lzma2Only))
  let position = 0
  for (const block of blocks) {
    const data = output.subarray(position, position + block.uncompressedSize)
    if (block.filters.some((f) => f.id === FILTER_X86)) undoBcjX86(data)
    if (checkType === 1) {
      const checkAt = align4(block.offset + block.headerSize + block.compressedSize)
      if (crc32(data) !== stream.readUInt32LE(checkAt))
        throw new Error('the kernel payload failed its CRC32 check after decompression')
    }
    position += block.uncompressedSize
  }
  return output
}

/** Blocks as the stream's index lists them (sizes) and their headers say (filters). */
function readBlocks(stream: Buffer, checkSize: number): XzBlock[] {
  // The footer: the last "YZ" magic, 12 bytes after which at most the kernel's size trailer follows.
  let footer = -1
  for (let end = stream.length; end >= stream.length - 16 && end >= 24; end--) {
    if (stream[end - 2] === 0x59 && stream[end - 1] === 0x5a) {
      footer = end - 12
      break
    }
  }
  if (footer < 0) throw new Error('no xz stream footer at the end of the kernel payload')
  const indexSize = (stream.readUInt32LE(footer + 4) + 1) * 4
  const reader = new VliReader(stream, footer - indexSize + 1) // skip the index indicator (0x00)
  const count = Number(reader.next())
  const blocks: XzBlock[] = []
  let offset = 12
  for (let i = 0; i < count; i++) {
    const unpadded = Number(reader.next())
    const uncompressedSize = Number(reader.next())
    const headerSize = (stream[offset]! + 1) * 4
    const compressedSize = unpadded - headerSize - checkSize
    blocks.push({
      offset,
      headerSize,
      compressedSize,
      uncompressedSize,
      filters: blockFilters(stream, offset),
    })
    offset += align4(unpadded - checkSize) + checkSize
  }
  return blocks
}

function blockFilters(stream: Buffer, offset: number): XzBlock['filters'] {
  const flags = stream[offset + 1]!
  const reader = new VliReader(stream, offset + 2)
  if (flags & 0x40) reader.next()
  if (flags & 0x80) reader.next()
  const filters: XzBlock['filters'] = []
  for (let i = 0; i <= (flags & 3); i++) {
    const id = reader.next()
    const size = Number(reader.next())
    filters.push({ id, props: stream.subarray(reader.position, reader.position + size) })
    reader.position += size
  }
  return filters
}

/** A new stream with the same compressed data, each block's filter chain cut to LZMA2, no check. */
function reframe(stream: Buffer, blocks: XzBlock[], chains: XzBlock['filters'][]): Buffer {
  const parts: Buffer[] = [Buffer.concat([XZ_MAGIC, withCrc(Buffer.from([0, 0]))])]
  const records: number[] = []
  blocks.forEach((block, i) => {
    const lzma2 = chains[i]![0]!
    const header = withCrc(Buffer.from([2, 0, 0x21, lzma2.props.length, ...lzma2.props, 0, 0, 0].slice(0, 8)))
    const start = block.offset + block.headerSize
    const data = stream.subarray(start, start + block.compressedSize)
    parts.push(header, data, Buffer.alloc(align4(data.length) - data.length))
    records.push(header.length + data.length, block.uncompressedSize)
  })
  const index = [0, ...vli(blocks.length), ...records.flatMap(vli)]
  while ((index.length + 4) % 4) index.push(0)
  const indexBytes = withCrc(Buffer.from(index))
  const backward = Buffer.alloc(6)
  backward.writeUInt32LE(indexBytes.length / 4 - 1)
  const footerBody = withCrc(backward)
  parts.push(indexBytes, footerBody.subarray(6), footerBody.subarray(0, 6), Buffer.from('YZ'))
  return Buffer.concat(parts)
}

/** Undoes the x86 BCJ filter in place (XZ Embedded's bcj_x86, start offset 0, one whole block). */
export function undoBcjX86(buf: Uint8Array): void {
  const allowed = [true, true, true, false, true, false, false, false]
  const bitNum = [0, 1, 2, 2, 3, 3, 3, 3]
  const msByte = (b: number) => b === 0x00 || b === 0xff
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  let prevPos = -1
  let prevMask = 0
  const size = buf.length - 4
  for (let i = 0; i < size; i++) {
    if ((buf[i]! & 0xfe) !== 0xe8) continue
    const distance = i - prevPos
    if (distance > 3) {
      prevMask = 0
    } else {
      prevMask = (prevMask << (distance - 1)) & 7
      if (prevMask !== 0) {
        const b = buf[i + 4 - bitNum[prevMask]!]!
        if (!allowed[prevMask] || msByte(b)) {
          prevPos = i
          prevMask = (prevMask << 1) | 1
          continue
        }
      }
    }
    prevPos = i
    if (msByte(buf[i + 4]!)) {
      let src = view.getUint32(i + 1, true)
      let dest: number
      for (;;) {
        dest = (src - (i + 5)) >>> 0
        if (prevMask === 0) break
        const j = bitNum[prevMask]! * 8
        if (!msByte((dest >>> (24 - j)) & 0xff)) break
        src = (dest ^ (2 ** (32 - j) - 1)) >>> 0
      }
      dest &= 0x01ffffff
      if (dest & 0x01000000) dest |= 0xfe000000
      view.setUint32(i + 1, dest >>> 0, true)
      i += 4
    } else {
      prevMask = (prevMask << 1) | 1
    }
  }
}

class VliReader {
  constructor(
    private readonly buf: Buffer,
    public position: number,
  ) {}
  next(): bigint {
    let value = 0n
    for (let shift = 0n; ; shift += 7n) {
      const byte = this.buf[this.position++]!
      value |= BigInt(byte & 0x7f) << shift
      if (!(byte & 0x80)) return value
    }
  }
}

function vli(value: number): number[] {
  const out: number[] = []
  while (value >= 0x80) {
    out.push((value & 0x7f) | 0x80)
    value = Math.floor(value / 128)
  }
  out.push(value)
  return out
}

function withCrc(body: Buffer): Buffer {
  const out = Buffer.alloc(body.length + 4)
  body.copy(out)
  out.writeUInt32LE(crc32(body), body.length)
  return out
}

function align4(n: number): number {
  return (n + 3) & ~3
}
