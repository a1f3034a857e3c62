import { cpSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import type { LaunchSpec } from '../launch-spec.js'
import { hostCpuModel, templateKey } from '../templates/template-key.js'

// A cache laid out like the real one, with small stand-ins for QEMU, the kernel and the images.
const home = mkdtempSync(join(tmpdir(), 'template-key-'))
afterAll(() => rmSync(home, { recursive: true, force: true }))
const cacheA = join(home, 'a', '.cache', 'vmctl')
for (const [file, content] of Object.entries({
  'bin/qemu': 'qemu 7.2',
  'kernels/6.1.0/vmlinux': 'kernel',
  'initramfs/i.cpio': 'initramfs',
  'runtime/rt.ext4': 'runtime disk',
})) {
  mkdirSync(join(cacheA, file, '..'), { recursive: true })
  writeFileSync(join(cacheA, file), content)
}
mkdirSync(join(cacheA, 'kernels/6.1.0/lib/modules/6.1.0'), { recursive: true })

function specIn(cache: string): LaunchSpec {
  return {
    ...spec,
    qemuBinary: join(cache, 'bin/qemu'),
    kernel: {
      image: join(cache, 'kernels/6.1.0/vmlinux'),
      format: 'elf',
      release: '6.1.0',
      modulesDir: join(cache, 'kernels/6.1.0/lib/modules/6.1.0'),
      source: 'cache',
    },
    initramfs: join(cache, 'initramfs/i.cpio'),
    runtimeDisk: join(cache, 'runtime/rt.ext4'),
    cacheDir: cache,
  }
}

const spec: LaunchSpec = {
  name: 'a',
  createdAt: '',
  creatorPid: 1,
  persistent: false,
  qemuBinary: join(cacheA, 'bin/qemu'),
  kernel: {
    image: join(cacheA, 'kernels/6.1.0/vmlinux'),
    format: 'elf',
    release: '6.1.0',
    modulesDir: join(cacheA, 'kernels/6.1.0/lib/modules/6.1.0'),
    source: 'cache',
  },
  initramfs: join(cacheA, 'initramfs/i.cpio'),
  runtimeDisk: join(cacheA, 'runtime/rt.ext4'),
  memoryMiB: 512,
  cpus: 2,
  hostRoot: undefined,
  image: { overlay: '/run/vmctl/a/disk.qcow2', identity: 'base-1' },
  mounts: [{ host: '/home/me/project', guest: '/mnt/p', writable: false }],
  guestPorts: [],
  kernelArgs: [],
  qemuArgs: [],
  accel: { accel: 'tcg', reason: '', probe: false },
  transport: { transport: 'virtio-serial', reason: '' },
  tscKhz: 1,
  bootTimeoutMs: undefined,
  cacheDir: cacheA,
  templates: true,
} as unknown as LaunchSpec

describe('template key across hosts', () => {
  test('the same cache restored under another $HOME (other paths, mtimes, inodes) keeps its keys', () => {
    const hostRooted = { ...spec, image: undefined, mounts: [], hostRoot: '/' }
    const key = templateKey({ ...hostRooted, ...specIn(cacheA) })
    const cacheB = join(home, 'b', 'somewhere', 'else', 'vmctl')
    cpSync(cacheA, cacheB, { recursive: true })
    utimesSync(join(cacheB, 'kernels/6.1.0/vmlinux'), new Date(2001, 1, 1), new Date(2001, 1, 1))
    expect(templateKey({ ...hostRooted, ...specIn(cacheB) })).toBe(key)
    // What the files hold is the key: another kernel (or QEMU, initramfs, runtime disk) is another.
    writeFileSync(join(cacheB, 'kernels/6.1.0/vmlinux'), 'another kernel')
    expect(templateKey({ ...hostRooted, ...specIn(cacheB) })).not.toBe(key)
    writeFileSync(join(cacheB, 'kernels/6.1.0/vmlinux'), 'kernel')
    writeFileSync(join(cacheB, 'runtime/rt.ext4'), 'runtime disk, rebuilt')
    expect(templateKey({ ...hostRooted, ...specIn(cacheB) })).not.toBe(key)
  })

  test('the TSC rate counts to the MHz: runners of one CPU model measure it a few kHz apart', () => {
    expect(templateKey({ ...spec, tscKhz: 1996249 })).toBe(templateKey({ ...spec, tscKhz: 1996251 }))
    expect(templateKey({ ...spec, tscKhz: 1996249 })).not.toBe(templateKey({ ...spec, tscKhz: 2445426 }))
  })

  test("under KVM the host's CPU model is part of the key (a -cpu host guest is bound to it)", () => {
    const kvm = { ...spec, accel: { accel: 'kvm' as const, reason: '', probe: false } }
    expect(templateKey(kvm)).not.toBe(templateKey(spec))
    expect(
      hostCpuModel(
        'processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Xeon\nstepping\t: 7\nflags\t\t: fpu vmx\n\nprocessor\t: 1\n',
      ),
    ).toBe('GenuineIntel|6|85|Xeon|7|fpu vmx')
  })
})

describe('template key in image mode', () => {
  test("a VM's overlay path and its mounts' host paths are not in the key; the base and the mounts' places are", () => {
    const key = templateKey(spec)
    expect(
      templateKey({ ...spec, name: 'b', image: { overlay: '/run/vmctl/b/disk.qcow2', identity: 'base-1' } }),
    ).toBe(key)
    expect(templateKey({ ...spec, mounts: [{ host: '/elsewhere', guest: '/mnt/p', writable: false }] })).toBe(
      key,
    )
    expect(
      templateKey({ ...spec, image: { overlay: '/run/vmctl/a/disk.qcow2', identity: 'base-2' } }),
    ).not.toBe(key)
    expect(
      templateKey({ ...spec, mounts: [{ host: '/home/me/project', guest: '/mnt/p', writable: true }] }),
    ).not.toBe(key)
    expect(templateKey({ ...spec, image: undefined, hostRoot: '/' })).not.toBe(key)
  })
})
