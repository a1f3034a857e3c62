import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { LaunchSpec } from '../launch-spec.js'

/** Where the stand-ins go in a cache, as the real cache lays them out. */
const STAND_INS = {
  'bin/qemu': 'qemu 7.2',
  'kernels/6.1.0/vmlinux': 'kernel',
  'initramfs/i.cpio': 'initramfs',
  'runtime/rt.ext4': 'runtime disk',
}

/** Writes small stand-ins for QEMU, the kernel, the initramfs and the runtime disk into `cache`. */
export function writeSampleCache(cache: string): void {
  for (const [file, content] of Object.entries(STAND_INS)) {
    mkdirSync(join(cache, file, '..'), { recursive: true })
    writeFileSync(join(cache, file), content)
  }
  mkdirSync(join(cache, 'kernels/6.1.0/lib/modules/6.1.0'), { recursive: true })
}

/**
 * A launch spec for template-key tests: a kernel-mode VM with the host root, one mount and a
 * forwarded port, its files in `cache` (see writeSampleCache). Every key is present, so a field
 * added to LaunchSpec must be given here (typecheck) and so in the tests built on it.
 */
export function sampleLaunchSpec(cache: string): LaunchSpec & Record<keyof LaunchSpec, unknown> {
  return {
    name: 'a',
    createdAt: '2026-01-01T00:00:00.000Z',
    creatorPid: 1,
    persistent: false,
    spare: undefined,
    spareIdleMs: undefined,
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
    memoryMiB: 512,
    cpus: 2,
    hostRoot: '/',
    image: undefined,
    mounts: [{ host: '/home/me/project', guest: '/mnt/p', writable: false }],
    guestPorts: ['8080'],
    networkSockets: ['/run/vmctl/networks/a/p/0.sock'],
    networkAddresses: undefined,
    kernelArgs: [],
    qemuArgs: [],
    accel: { accel: 'tcg', reason: 'test', probe: false },
    transport: { transport: 'virtio-serial', reason: 'test' },
    tscKhz: 1_996_249,
    bootTimeoutMs: undefined,
    cacheDir: cache,
    templates: true,
    templateCacheMiB: 0,
  }
}
