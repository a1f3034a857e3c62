import { describe, expect, test } from 'vitest'
import type { LaunchSpec } from '../supervisor/launch-spec.js'
import { templateKey } from '../templates/template-key.js'

const spec: LaunchSpec = {
  name: 'a',
  createdAt: '',
  creatorPid: 1,
  persistent: false,
  qemuBinary: process.execPath,
  kernel: { image: process.execPath, format: 'elf', release: '6.1.0', modulesDir: '/m', source: 'cache' },
  initramfs: '/c/i.cpio',
  runtimeDisk: '/c/rt.ext4',
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
  cacheDir: '/c',
  templates: true,
} as unknown as LaunchSpec

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
