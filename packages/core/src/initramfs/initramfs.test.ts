import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { CpioArchive } from './cpio-archive.js'
import { moduleLoadOrder, moduleName } from './module-order.js'

// One directory for the file's temporary files, removed when it ends.
const work = mkdtempSync(join(tmpdir(), 'vmctl-initramfs-test-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

/** A newc reader, enough to check what the writer produced. */
function readNewc(buf: Buffer): Array<{ name: string; mode: number; data: Buffer }> {
  const entries = []
  let offset = 0
  for (;;) {
    const header = buf.toString('latin1', offset, offset + 110)
    expect(header.slice(0, 6)).toBe('070701')
    const field = (i: number) => Number.parseInt(header.slice(6 + i * 8, 14 + i * 8), 16)
    const nameSize = field(11)
    const size = field(6)
    const name = buf.toString('latin1', offset + 110, offset + 110 + nameSize - 1)
    offset = Math.ceil((offset + 110 + nameSize) / 4) * 4
    const data = buf.subarray(offset, offset + size)
    offset = Math.ceil((offset + size) / 4) * 4
    if (name === 'TRAILER!!!') return entries
    entries.push({ name, mode: field(1), data })
  }
}

describe('cpio archive', () => {
  test('writes parents, files, symlinks and devices the kernel can unpack', () => {
    const path = join(mkdtempSync(join(work, 'cpio-')), 'a.cpio')
    const cpio = new CpioArchive(path)
    cpio.file('a/b/c.txt', Buffer.from('hello'), 0o600)
    cpio.symlink('bin/sh', '/bin/busybox')
    cpio.characterDevice('dev/console', 5, 1)
    cpio.file('a/b/c.txt', Buffer.from('ignored duplicate'))
    cpio.close()
    const entries = readNewc(readFileSync(path))
    expect(entries.map((e) => e.name)).toEqual([
      'a',
      'a/b',
      'a/b/c.txt',
      'bin',
      'bin/sh',
      'dev',
      'dev/console',
    ])
    const file = entries.find((e) => e.name === 'a/b/c.txt')!
    expect(file.data.toString()).toBe('hello')
    expect(file.mode).toBe(0o100600)
    expect(entries.find((e) => e.name === 'bin/sh')!.data.toString()).toBe('/bin/busybox')
    expect(entries.find((e) => e.name === 'dev/console')!.mode & 0o170000).toBe(0o020000)
  })
})

describe('module load order', () => {
  const dep = [
    'kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko',
    'kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko',
    'kernel/fs/netfs/netfs.ko:',
    'kernel/net/9p/9pnet.ko:',
    'kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/virtio/virtio_ring.ko:',
    'kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio_ring.ko',
  ].join('\n')

  test('dependencies come first, each module once', () => {
    const { order, missing } = moduleLoadOrder(dep, ['9pnet_virtio', '9p', 'virtio_rng', 'not_a_module'])
    expect(order.indexOf('kernel/net/9p/9pnet.ko')).toBeLessThan(
      order.indexOf('kernel/net/9p/9pnet_virtio.ko'),
    )
    expect(order.indexOf('kernel/fs/netfs/netfs.ko')).toBeLessThan(
      order.indexOf('kernel/fs/fscache/fscache.ko'),
    )
    expect(order.indexOf('kernel/fs/fscache/fscache.ko')).toBeLessThan(order.indexOf('kernel/fs/9p/9p.ko'))
    expect(new Set(order).size).toBe(order.length)
    expect(order).toContain('kernel/drivers/char/hw_random/virtio-rng.ko')
    expect(missing).toEqual(['not_a_module'])
  })

  test('module names treat - and _ alike', () => {
    expect(moduleName('kernel/drivers/char/hw_random/virtio-rng.ko')).toBe('virtio_rng')
    expect(moduleName('x/ext4.ko.xz')).toBe('ext4')
  })
})
