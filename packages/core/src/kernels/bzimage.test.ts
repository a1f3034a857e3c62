import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { describe, expect, test } from 'vitest'
import { which } from '../host/qemu-locator.js'
import { runForBytes } from '../test-support/run-command.js'
import { decodeXz, extractVmlinux, PayloadFormatError } from './bzimage.js'

const xz = which('xz', process.env.PATH)
const vmlinuz = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vmctl/kernels/default/vmlinuz')

const kernels = join(vmlinuz, '..', '..')
/** Debian 13's kernel (zstd payload), when `debian:trixie` was fetched into the cache. */
const trixie = (existsSync(kernels) ? readdirSync(kernels) : [])
  .filter((r) => r.includes('+deb13-') && existsSync(join(kernels, r, 'vmlinuz')))
  .map((r) => join(kernels, r, 'vmlinuz'))[0]
const zstd = which('zstd', `${process.env.PATH}:/usr/bin`)

/** Bytes with plenty of x86 call/jump opcodes (E8/E9), so the BCJ filter has work to do. */
function codeLike(size: number): Buffer {
  const out = Buffer.alloc(size)
  let seed = 7
  for (let i = 0; i < size; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0
    out[i] = i % 7 === 0 ? 0xe8 : i % 11 === 0 ? 0x00 : seed >>> 24
  }
  return out
}

describe('bzImage → vmlinux', () => {
  test.skipIf(!xz)('decodes xz --x86 streams (BCJ undone in JS) as xz does (needs xz)', async () => {
    const data = codeLike(3 << 20)
    for (const check of ['crc32', 'crc64']) {
      const compressed = await runForBytes(xz!, ['--x86', '--lzma2=preset=1', `--check=${check}`, '-c'], data)
      const decoded = await decodeXz(Buffer.concat([compressed, Buffer.from([1, 2, 3, 4])])) // + the kernel's size trailer
      expect(crc32(decoded)).toBe(crc32(data))
    }
    const plain = await runForBytes(xz!, ['--lzma2=preset=1', '-c'], data)
    expect((await decodeXz(plain)).equals(data)).toBe(true)
  })

  test.skipIf(!existsSync(vmlinuz))(
    "extracts the cached kernel's ELF, CRC32-checked (needs a cached kernel)",
    async () => {
      const image = readFileSync(vmlinuz)
      const started = Date.now()
      const elf = await extractVmlinux(image)
      console.log(`vmlinux: ${elf.length} bytes in ${Date.now() - started} ms`)
      expect(elf.readUInt32BE(0)).toBe(0x7f454c46)
      // A flipped byte in the compressed payload fails loudly instead of making a bad vmlinux.
      const broken = Buffer.from(image)
      const payload = (broken[0x1f1]! + 1) * 512 + broken.readUInt32LE(0x248)
      broken[payload + 4096] = broken[payload + 4096]! ^ 0xff
      await expect(extractVmlinux(broken)).rejects.toThrow()
      await expect(extractVmlinux(Buffer.alloc(0x300))).rejects.toThrow(/not a bzImage/)
    },
    60_000,
  )

  test.skipIf(!trixie || !zstd)(
    'extracts a zstd bzImage (needs debian:trixie cached and zstd)',
    async () => {
      const image = readFileSync(trixie!)
      const elf = await extractVmlinux(image)
      expect(elf.readUInt32BE(0)).toBe(0x7f454c46)
      expect(elf.indexOf('Linux version 6.12.')).toBeGreaterThan(0)
      // A payload in a format vmctl does not unpack (lz4, as the cloud kernel's) is a PayloadFormatError:
      // the fetch then keeps the bzImage to boot.
      const lz4 = Buffer.from(image)
      const payload = (lz4[0x1f1]! + 1) * 512 + lz4.readUInt32LE(0x248)
      lz4.writeUInt32LE(0x184c2102, payload)
      await expect(extractVmlinux(lz4)).rejects.toThrow(PayloadFormatError)
    },
    60_000,
  )
})
