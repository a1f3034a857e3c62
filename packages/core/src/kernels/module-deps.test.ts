import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { which } from '../host/qemu-locator.js'
import { BOOT_MODULES, VSOCK_MODULES } from '../initramfs/initramfs-builder.js'
import { moduleLoadOrder } from '../initramfs/module-order.js'
import { runCommand } from '../test-support/run-command.js'
import { computeModulesDep, listModules, readModinfo, readModuleFile } from './module-deps.js'

/** A minimal ELF64 relocatable file with a .modinfo section, as modpost leaves in a .ko. */
function elfWithModinfo(modinfo: string): Buffer {
  const info = Buffer.from(modinfo)
  const names = Buffer.from('\0.modinfo\0.shstrtab\0')
  const header = Buffer.alloc(64)
  header.writeUInt32BE(0x7f454c46, 0)
  header[4] = 2 // ELFCLASS64
  header[5] = 1 // little-endian
  const sectionsAt = 64 + info.length + names.length
  header.writeBigUInt64LE(BigInt(sectionsAt), 0x28)
  header.writeUInt16LE(64, 0x3a)
  header.writeUInt16LE(3, 0x3c)
  header.writeUInt16LE(2, 0x3e)
  const section = (name: number, offset: number, size: number) => {
    const s = Buffer.alloc(64)
    s.writeUInt32LE(name, 0)
    s.writeBigUInt64LE(BigInt(offset), 0x18)
    s.writeBigUInt64LE(BigInt(size), 0x20)
    return s
  }
  return Buffer.concat([
    header,
    info,
    names,
    section(0, 0, 0),
    section(1, 64, info.length),
    section(10, 64 + info.length, names.length),
  ])
}

describe('modules.dep', () => {
  test(".modinfo: reads depends= and repeated keys out of an ELF's section", () => {
    const info = readModinfo(
      elfWithModinfo(
        'alias=fs-9p\0depends=9pnet,netfs,fscache\0retpoline=Y\0intree=Y\0name=9p\0alias=9p2000\0',
      ),
    )
    expect(info.get('depends')).toEqual(['9pnet,netfs,fscache'])
    expect(info.get('alias')).toEqual(['fs-9p', '9p2000'])
    expect(info.get('name')).toEqual(['9p'])
    expect(() => readModinfo(Buffer.from('#!/bin/sh\n'.padEnd(64)))).toThrow(/not a little-endian ELF64/)
  })

  test("depmod's format: every module, its whole dependency closure, users before what they use", () => {
    const dep = computeModulesDep(
      [
        { path: 'kernel/fs/9p/9p.ko', depends: ['9pnet', 'netfs'] },
        { path: 'kernel/net/9p/9pnet_virtio.ko', depends: ['9pnet', 'virtio', 'virtio_ring'] },
        { path: 'kernel/net/9p/9pnet.ko', depends: [] },
        { path: 'kernel/fs/netfs/netfs.ko', depends: ['fscache'] },
        { path: 'kernel/fs/fscache/fscache.ko', depends: [] },
        { path: 'kernel/drivers/virtio/virtio_ring.ko', depends: [] },
        { path: 'kernel/drivers/virtio/virtio.ko', depends: [] },
        { path: 'kernel/drivers/char/hw_random/virtio-rng.ko', depends: [] }, // file "-", module "_"
        { path: 'kernel/drivers/char/uses-rng.ko', depends: ['virtio_rng', 'builtin_only'] },
      ],
      ['kernel/net/9p/9pnet.ko', 'kernel/fs/9p/9p.ko'], // modules.order comes first
    )
    const lines = dep.trimEnd().split('\n')
    expect(lines.slice(0, 2)).toEqual([
      'kernel/net/9p/9pnet.ko:',
      'kernel/fs/9p/9p.ko: kernel/fs/netfs/netfs.ko kernel/fs/fscache/fscache.ko kernel/net/9p/9pnet.ko',
    ])
    expect(lines).toContain('kernel/drivers/char/uses-rng.ko: kernel/drivers/char/hw_random/virtio-rng.ko')
    expect(lines).toHaveLength(9)
    // What the initramfs does with it: every module after all it needs, nothing twice.
    const { order } = moduleLoadOrder(dep, ['9p', '9pnet_virtio'])
    expect(new Set(order).size).toBe(order.length)
    expect([...order].sort()).toEqual(
      [
        'kernel/fs/fscache/fscache.ko',
        'kernel/fs/netfs/netfs.ko',
        'kernel/net/9p/9pnet.ko',
        'kernel/fs/9p/9p.ko',
        'kernel/drivers/virtio/virtio.ko',
        'kernel/drivers/virtio/virtio_ring.ko',
        'kernel/net/9p/9pnet_virtio.ko',
      ].sort(),
    )
    const before = (a: string, b: string) => order.indexOf(`kernel/${a}`) < order.indexOf(`kernel/${b}`)
    expect(before('fs/fscache/fscache.ko', 'fs/netfs/netfs.ko')).toBe(true)
    expect(before('fs/netfs/netfs.ko', 'fs/9p/9p.ko')).toBe(true)
    expect(before('net/9p/9pnet.ko', 'fs/9p/9p.ko')).toBe(true)
    expect(before('drivers/virtio/virtio_ring.ko', 'net/9p/9pnet_virtio.ko')).toBe(true)
  })
})

const cached = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vmctl/kernels/default')
const release = existsSync(join(cached, 'release'))
  ? readFileSync(join(cached, 'release'), 'utf8').trim()
  : ''
const modulesDir = join(cached, 'lib/modules', release)
const depmod = which('depmod', `${process.env.PATH}:/usr/sbin:/sbin`)

describe.skipIf(!release || !existsSync(join(modulesDir, 'kernel')) || !depmod)(
  "modules.dep of the cached kernel against depmod's (needs a cached kernel and kmod's depmod)",
  () => {
    const base = mkdtempSync(join(tmpdir(), 'vmctl-depmod-'))
    afterAll(() => rmSync(base, { recursive: true, force: true }))

    test('the same modules and dependencies on every line, the same boot module load order', async () => {
      // depmod into a scratch tree whose kernel/ is the cached one (nothing in the cache changes).
      const scratch = join(base, 'lib/modules', release)
      mkdirSync(scratch, { recursive: true })
      symlinkSync(join(modulesDir, 'kernel'), join(scratch, 'kernel'))
      for (const file of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo'])
        if (existsSync(join(modulesDir, file))) copyFileSync(join(modulesDir, file), join(scratch, file))
      await runCommand(depmod!, ['-b', base, release])
      const theirs = readFileSync(join(scratch, 'modules.dep'), 'utf8')

      const order = readFileSync(join(modulesDir, 'modules.order'), 'utf8').split('\n').filter(Boolean)
      const modules = []
      for (const path of listModules(modulesDir)) {
        const depends = readModinfo(await readModuleFile(join(modulesDir, path))).get('depends')?.[0] ?? ''
        modules.push({ path, depends: depends.split(',').filter(Boolean) })
      }
      const ours = computeModulesDep(modules, order)

      const asSets = (text: string) =>
        text
          .trimEnd()
          .split('\n')
          .map((line) => {
            const [path, deps = ''] = line.split(':')
            return `${path}: ${deps.trim().split(/\s+/).filter(Boolean).sort().join(' ')}`
          })
      expect(asSets(ours)).toEqual(asSets(theirs))
      for (const wanted of [BOOT_MODULES, VSOCK_MODULES]) {
        expect(moduleLoadOrder(ours, wanted)).toEqual(moduleLoadOrder(theirs, wanted))
      }
      const sameLines = ours.split('\n').filter((line, i) => line === theirs.split('\n')[i]).length
      console.log(
        `${sameLines} of ${order.length} lines byte-identical to depmod's; the rest order siblings differently`,
      )
    }, 60_000)
  },
)
