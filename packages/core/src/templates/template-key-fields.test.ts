import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import type { LaunchSpec } from '../launch-spec.js'
import { sampleLaunchSpec, writeSampleCache } from '../test-support/sample-launch-spec.js'
import { templateKey } from './template-key.js'

// A cache of small stand-ins for QEMU, the kernel and the images, and a second of each with other content.
const dir = mkdtempSync(join(tmpdir(), 'template-key-fields-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const file = (name: string, content: string): string => {
  writeFileSync(join(dir, name), content)
  return join(dir, name)
}
const otherCache = join(dir, 'other-cache')
mkdirSync(otherCache)
writeSampleCache(dir)
const sample = sampleLaunchSpec(dir)

type Role = 'defines the VM' | 'per instance'
type Fields = { [K in keyof LaunchSpec]-?: { role: Role; change: (spec: LaunchSpec) => LaunchSpec[K] } }

/**
 * Every field of the spec, with its role and a change to it. "defines the VM": a change must give
 * another key (another template). "per instance": what each VM made or restored from a template has
 * for itself, or what only steers vmctl: a change must keep the key. The type needs every field.
 */
const fields: Fields = {
  qemuBinary: { role: 'defines the VM', change: () => file('qemu-8', 'qemu 8.0') },
  kernel: {
    role: 'defines the VM',
    change: (s) => ({ ...s.kernel, image: file('vmlinux-2', 'another kernel') }),
  },
  initramfs: { role: 'defines the VM', change: () => file('initramfs-2', 'another initramfs') },
  runtimeDisk: { role: 'defines the VM', change: () => file('runtime-2', 'runtime disk, rebuilt') },
  memoryMiB: { role: 'defines the VM', change: () => 1024 },
  cpus: { role: 'defines the VM', change: () => 1 },
  hostRoot: { role: 'defines the VM', change: () => undefined },
  image: {
    role: 'defines the VM',
    change: () => ({ overlay: '/run/vmctl/a/disk.qcow2', identity: 'base-1' }),
  },
  mounts: {
    role: 'defines the VM',
    change: (s) => [...(s.mounts ?? []), { host: '/data', guest: '/mnt/data', writable: true }],
  },
  kernelArgs: { role: 'defines the VM', change: () => ['loglevel=7'] },
  qemuArgs: { role: 'defines the VM', change: () => ['-device', 'virtio-balloon-device'] },
  accel: { role: 'defines the VM', change: (s) => ({ ...s.accel, accel: 'kvm' }) },
  transport: { role: 'defines the VM', change: (s) => ({ ...s.transport, transport: 'vsock' }) },
  tscKhz: { role: 'defines the VM', change: () => 2_445_426 },
  name: { role: 'per instance', change: () => 'b' },
  createdAt: { role: 'per instance', change: () => '2026-02-02T00:00:00.000Z' },
  creatorPid: { role: 'per instance', change: () => 2 },
  persistent: { role: 'per instance', change: () => true },
  spare: { role: 'per instance', change: () => true },
  spareIdleMs: { role: 'per instance', change: () => 60_000 },
  guestPorts: { role: 'per instance', change: () => ['22', '5432/udp'] },
  networkSockets: { role: 'per instance', change: () => ['/run/vmctl/networks/b/p/7.sock'] },
  networkAddresses: {
    role: 'per instance',
    change: () => [{ network: 'b', ip: '10.213.1.11', mac: '02:76:6d:01:00:01' }],
  },
  bootTimeoutMs: { role: 'per instance', change: () => 5_000 },
  cacheDir: { role: 'per instance', change: () => otherCache },
  templates: { role: 'per instance', change: () => false },
  templateCacheMiB: { role: 'per instance', change: () => 100 },
}

const withRole = (role: Role) =>
  Object.entries(fields)
    .filter(([, f]) => f.role === role)
    .map(([name, f]) => [name, f.change] as const)

describe('template key: every launch spec field is in it or named per-instance', () => {
  test('each field of the spec has a role', () => {
    // The types hold this too (sample must have every key, fields needs every key); this is
    // the same check for a run without typecheck.
    expect(Object.keys(fields).sort()).toEqual(Object.keys(sample).sort())
  })

  const key = templateKey(sample)
  test.each(withRole('defines the VM'))('changing %s gives another key', (field, change) => {
    const changed = { ...sample, [field]: change(sample) }
    expect(changed[field as keyof LaunchSpec]).not.toEqual(sample[field as keyof LaunchSpec])
    expect(templateKey(changed)).not.toBe(key)
  })

  test.each(withRole('per instance'))('changing %s keeps the key', (field, change) => {
    const changed = { ...sample, [field]: change(sample) }
    expect(changed[field as keyof LaunchSpec]).not.toEqual(sample[field as keyof LaunchSpec])
    expect(templateKey(changed)).toBe(key)
  })

  test('within the defining fields: what a restored VM gets for itself stays out, the rest counts', () => {
    const imaged = {
      ...sample,
      hostRoot: undefined,
      image: { overlay: '/run/vmctl/a/disk.qcow2', identity: 'base-1' },
    }
    const imageKey = templateKey(imaged)
    // Another VM's overlay of the same base, another mount source, modules elsewhere: same key.
    expect(
      templateKey({ ...imaged, image: { overlay: '/run/vmctl/b/disk.qcow2', identity: 'base-1' } }),
    ).toBe(imageKey)
    expect(
      templateKey({ ...sample, mounts: [{ host: '/elsewhere', guest: '/mnt/p', writable: false }] }),
    ).toBe(key)
    expect(templateKey({ ...sample, kernel: { ...sample.kernel, modulesDir: '/other/modules' } })).toBe(key)
    // Another base, a mount's place or mode, modules or none: another key.
    expect(
      templateKey({ ...imaged, image: { overlay: '/run/vmctl/a/disk.qcow2', identity: 'base-2' } }),
    ).not.toBe(imageKey)
    expect(
      templateKey({ ...sample, mounts: [{ host: '/home/me/project', guest: '/mnt/q', writable: false }] }),
    ).not.toBe(key)
    expect(
      templateKey({ ...sample, mounts: [{ host: '/home/me/project', guest: '/mnt/p', writable: true }] }),
    ).not.toBe(key)
    expect(templateKey({ ...sample, kernel: { ...sample.kernel, modulesDir: undefined } })).not.toBe(key)
    // Another network's port: same key; on no network, or on two: another key (a NIC each).
    expect(templateKey({ ...sample, networkSockets: undefined })).not.toBe(key)
    expect(templateKey({ ...sample, networkSockets: ['/a/p/0.sock', '/b/p/0.sock'] })).not.toBe(key)
  })
})
