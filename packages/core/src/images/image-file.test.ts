import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { afterAll, describe, expect, test } from 'vitest'
import { diskSignature } from './disk-signature.js'
import { ImageError, inspectImage } from './image-file.js'

const dir = mkdtempSync(join(tmpdir(), 'vmctl-image-file-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function fake(name: string, size: number, marks: [offset: number, bytes: Buffer][] = []): string {
  const data = Buffer.alloc(size)
  for (const [offset, bytes] of marks) bytes.copy(data, offset)
  const path = join(dir, name)
  writeFileSync(path, data)
  return path
}

describe('disk image check before boot', () => {
  test('partition tables and filesystems are recognised at the start of a raw file', () => {
    expect(diskSignature(fake('mbr.raw', 1 << 20, [[510, Buffer.from([0x55, 0xaa])]]))).toBe(
      'MBR partition table',
    )
    expect(diskSignature(fake('gpt.raw', 1 << 20, [[512, Buffer.from('EFI PART')]]))).toBe(
      'GPT partition table',
    )
    expect(diskSignature(fake('ext4.raw', 1 << 20, [[1080, Buffer.from([0x53, 0xef])]]))).toBe('ext2/3/4')
    expect(diskSignature(fake('btrfs.raw', 1 << 20, [[0x10040, Buffer.from('_BHRfS_M')]]))).toBe('btrfs')
    expect(diskSignature(fake('zeros.raw', 1 << 20))).toBeUndefined()
    expect(diskSignature(fake('short.raw', 100))).toBeUndefined()
  })

  test('a file of random bytes is refused before any boot, in well under a second', () => {
    const path = join(dir, 'random.img')
    const bytes = randomBytes(1 << 20)
    bytes[510] = 0 // random bytes that happen to end in 55 aa would read as an MBR
    writeFileSync(path, bytes)
    const started = performance.now()
    const error = (() => {
      try {
        inspectImage(path)
      } catch (e) {
        return e
      }
    })()
    const elapsed = performance.now() - started
    expect(error).toBeInstanceOf(ImageError)
    expect((error as ImageError).exitCode).toBe(2)
    expect((error as Error).message).toBe(
      `${path} is not a disk image: it is neither qcow2 nor a raw disk with a partition table or a filesystem (ext4, XFS, btrfs, ...). Fix: point image at a qcow2 or raw disk image (a cloud image, or one vmctl builds: image: { distribution: 'bookworm' })`,
    )
    expect(elapsed).toBeLessThan(1000)
  })

  test('a checked image is checked again once it changes: a truncated qcow2 is refused', async () => {
    const path = join(dir, 'changes.qcow2')
    const { execFileSync } = await import('node:child_process')
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, '64M'])
    expect(inspectImage(path)).toMatchObject({ format: 'qcow2', virtualSize: 64 << 20 })
    const again = performance.now()
    expect(inspectImage(path)).toMatchObject({ format: 'qcow2' })
    expect(performance.now() - again).toBeLessThan(5) // remembered: no qemu-img run
    writeFileSync(path, Buffer.from('QFI\xfb'))
    expect(() => inspectImage(path)).toThrow(ImageError)
  })

  test('a raw disk with a filesystem passes', () => {
    const path = fake('fs.raw', 1 << 20, [[1080, Buffer.from([0x53, 0xef])]])
    expect(inspectImage(path)).toMatchObject({ format: 'raw', virtualSize: 1 << 20 })
  })
})
