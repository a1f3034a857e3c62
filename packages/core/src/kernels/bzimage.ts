import * as zlib from 'node:zlib'
import { crc32, gunzipSync } from 'node:zlib'
import { loadExeca } from '../host/lazy-execa.js'
import { which } from '../host/qemu-locator.js'
import { buildStream, FILTER_LZMA2, FILTER_X86, lzma2OnlyBlock, readXzLayout, XZ_MAGIC } from './xz-blocks.js'
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
  // trixie's kernels: zstd, with the uncompressed size appended (4 bytes) as for every format.
  else if (payload.readUInt32LE(0) === ZSTD_MAGIC) vmlinux = await decodeZstd(payload.subarray(0, -4))
  else
    throw new PayloadFormatError(
      `the bzImage's payload is compressed with a format vmctl does not unpack (first bytes ${payload.subarray(0, 4).toString('hex')}; xz, gzip and zstd are)`,
    )
  if (vmlinux.readUInt32BE(0) !== 0x7f454c46) throw new Error('the bzImage payload is not an ELF vmlinux')
  return vmlinux
}

const ZSTD_MAGIC = 0xfd2fb528

/**
 * Thrown when vmctl cannot unpack a bzImage's payload here (lz4, as in Debian's cloud kernel; zstd
 * without a decoder): the bzImage still boots, through its own decompressor.
 */
export class PayloadFormatError extends Error {}

/**
 * A zstd frame: node:zlib's decoder where Node has one (22.15+), else the host's `zstd` (Debian's
 * zstd package, which most hosts have); without either the caller boots the bzImage itself.
 */
async function decodeZstd(frame: Buffer): Promise<Buffer> {
  const zstd = (zlib as unknown as { zstdDecompressSync?: (b: Buffer) => Buffer }).zstdDecompressSync
  if (zstd) return zstd(frame)
  const binary = which('zstd', `${process.env.PATH ?? ''}:/usr/bin`)
  if (!binary)
    throw new PayloadFormatError(
      'the bzImage is zstd-compressed and neither Node 22.15+ nor a zstd command is here',
    )
  const execa = await loadExeca()
  const result = await execa(binary, ['-dc'], {
    input: frame,
    encoding: 'buffer',
    reject: false,
    maxBuffer: 1 << 30,
  })
  if (result.exitCode !== 0)
    throw new Error(`zstd -dc failed on the bzImage payload: ${Buffer.from(result.stderr).toString().trim()}`)
  return Buffer.from(result.stdout)
}

/** One xz stream, possibly followed by other bytes (the kernel appends the uncompressed size). */
export async function decodeXz(stream: Buffer): Promise<Buffer> {
  const layout = readXzLayout(stream)
  const blocks = layout.blocks.map((block) => {
    const rest = block.filters.filter((f) => f.id !== FILTER_X86)
    if (rest.length !== 1 || rest[0]!.id !== FILTER_LZMA2)
      throw new Error('the kernel payload uses an xz filter other than x86 BCJ and LZMA2')
    return lzma2OnlyBlock(stream, block, rest[0]!.props)
  })
  const output = await unxz(buildStream(0, blocks))
  let position = 0
  for (const block of layout.blocks) {
    const data = output.subarray(position, position + block.uncompressedSize)
    if (block.filters.some((f) => f.id === FILTER_X86)) undoBcjX86(data)
    if (layout.checkType === 1 && crc32(data) !== stream.readUInt32LE(block.checkAt))
      throw new Error('the kernel payload failed its CRC32 check after decompression')
    position += block.uncompressedSize
  }
  return output
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
