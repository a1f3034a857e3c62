import { crc32 } from 'node:zlib'

/**
 * The block structure of an .xz stream (the xz file format, tukaani.org/xz/xz-file-format.txt):
 * stream header, blocks, index, footer. Read to take blocks apart: decoded in parallel (the
 * .deb's data.tar.xz has a block per 24 MiB) or re-framed with fewer filters (bzimage.ts).
 */
export const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])
export const FILTER_X86 = 0x04n
export const FILTER_LZMA2 = 0x21n
const CHECK_SIZES = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64]

export interface XzBlock {
  /** Where the block header starts in the stream. */
  offset: number
  headerSize: number
  compressedSize: number
  uncompressedSize: number
  filters: Array<{ id: bigint; props: Buffer }>
  /** Offset of the block's check field (checkSize bytes). */
  checkAt: number
}

export interface XzLayout {
  checkType: number
  checkSize: number
  blocks: XzBlock[]
}

/**
 * The blocks of one xz stream, as its index lists them (sizes) and their headers say (filters).
 * The stream may be followed by up to 16 other bytes (the kernel appends its uncompressed size).
 */
export function readXzLayout(stream: Buffer): XzLayout {
  if (!stream.subarray(0, 6).equals(XZ_MAGIC)) throw new Error('not an xz stream')
  const checkType = stream[7]! & 0x0f
  const checkSize = CHECK_SIZES[checkType]!
  let footer = -1
  for (let end = stream.length; end >= stream.length - 16 && end >= 24; end--) {
    if (stream[end - 2] === 0x59 && stream[end - 1] === 0x5a) {
      footer = end - 12
      break
    }
  }
  if (footer < 0) throw new Error('no xz stream footer at the end of the data')
  const indexSize = (stream.readUInt32LE(footer + 4) + 1) * 4
  const reader = new VliReader(stream, footer - indexSize + 1) // past the index indicator (0x00)
  const count = Number(reader.next())
  const blocks: XzBlock[] = []
  let offset = 12
  for (let i = 0; i < count; i++) {
    const unpadded = Number(reader.next())
    const uncompressedSize = Number(reader.next())
    const headerSize = (stream[offset]! + 1) * 4
    const compressedSize = unpadded - headerSize - checkSize
    const checkAt = offset + align4(headerSize + compressedSize)
    blocks.push({
      offset,
      headerSize,
      compressedSize,
      uncompressedSize,
      filters: blockFilters(stream, offset),
      checkAt,
    })
    offset = checkAt + checkSize
  }
  return { checkType, checkSize, blocks }
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

/** A stream holding one block of another, byte for byte: decodable on its own. */
export function singleBlockStream(stream: Buffer, layout: XzLayout, block: XzBlock): Buffer {
  const bytes = stream.subarray(block.offset, block.checkAt + layout.checkSize)
  return buildStream(layout.checkType, [
    {
      bytes,
      unpadded: block.headerSize + block.compressedSize + layout.checkSize,
      uncompressedSize: block.uncompressedSize,
    },
  ])
}

/** The compressed data of a block behind a new header with one LZMA2 filter, and no check. */
export function lzma2OnlyBlock(stream: Buffer, block: XzBlock, lzma2Props: Buffer): BuiltBlock {
  const header = withCrc(Buffer.from([2, 0, 0x21, lzma2Props.length, ...lzma2Props, 0, 0, 0].slice(0, 8)))
  const start = block.offset + block.headerSize
  const data = stream.subarray(start, start + block.compressedSize)
  const padding = Buffer.alloc(align4(data.length) - data.length)
  return {
    bytes: Buffer.concat([header, data, padding]),
    unpadded: header.length + data.length,
    uncompressedSize: block.uncompressedSize,
  }
}

export interface BuiltBlock {
  /** Header, compressed data, padding and check. */
  bytes: Buffer
  unpadded: number
  uncompressedSize: number
}

/** A whole stream around blocks: header, the blocks, their index, footer. */
export function buildStream(checkType: number, blocks: BuiltBlock[]): Buffer {
  const flags = Buffer.from([0, checkType])
  const index = [
    0,
    ...vli(blocks.length),
    ...blocks.flatMap((b) => [...vli(b.unpadded), ...vli(b.uncompressedSize)]),
  ]
  while ((index.length + 4) % 4) index.push(0)
  const indexBytes = withCrc(Buffer.from(index))
  const backward = Buffer.alloc(4)
  backward.writeUInt32LE(indexBytes.length / 4 - 1)
  const footer = withCrc(Buffer.concat([backward, flags]))
  return Buffer.concat([
    XZ_MAGIC,
    withCrc(flags),
    ...blocks.map((b) => b.bytes),
    indexBytes,
    footer.subarray(6), // CRC32 first, then backward size and flags
    footer.subarray(0, 6),
    Buffer.from('YZ'),
  ])
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

export function align4(n: number): number {
  return (n + 3) & ~3
}
