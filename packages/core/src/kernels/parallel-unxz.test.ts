import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { describe, expect, test } from 'vitest'
import { which } from '../host/qemu-locator.js'
import { unxzParallel } from './parallel-unxz.js'
import { readXzLayout } from './xz-blocks.js'

const xz = which('xz', process.env.PATH)

async function decode(stream: Buffer, threads: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of unxzParallel(stream, threads)) chunks.push(chunk)
  return Buffer.concat(chunks)
}

describe.skipIf(!xz)('parallel xz decoding (needs xz to make test streams)', () => {
  // Half compressible text, half random bytes, in blocks of 256 KiB as dpkg-deb cuts 24 MiB ones.
  const data = Buffer.concat([Buffer.from('vmctl '.repeat(300_000)), randomBytes(1_200_000)])
  const compressed = execFileSync(xz!, ['-1', '--block-size=256KiB', '--check=crc64', '-c'], {
    input: data,
    maxBuffer: 1 << 26,
  })

  test('decodes a multi-block stream in order, on workers or on one thread alike', async () => {
    expect(readXzLayout(compressed).blocks.length).toBeGreaterThan(8)
    expect((await decode(compressed, 3)).equals(data)).toBe(true)
    expect((await decode(compressed, 1)).equals(data)).toBe(true)
  })

  test('a corrupt block fails the whole stream', async () => {
    const broken = Buffer.from(compressed)
    const block = readXzLayout(broken).blocks[5]!
    broken[block.offset + block.headerSize + 100] = broken[block.offset + block.headerSize + 100]! ^ 0x55
    await expect(decode(broken, 3)).rejects.toThrow()
  })
})
