import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { isVmtestConfig, loadVmtestConfig, memoryMiB } from './vmtest-config.js'

const dir = mkdtempSync(join(tmpdir(), 'vmctl-vmtest-config-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
writeFileSync(join(dir, 'bzImage-test'), 'not read by the parser')
writeFileSync(join(dir, 'disk.qcow2'), '')
mkdirSync(join(dir, 'rootfs'))

function load(toml: string) {
  const file = join(dir, 'vmtest.toml')
  writeFileSync(file, toml)
  return loadVmtestConfig(file)
}

describe("vmtest's config", () => {
  test("the README's example: a kernel target and an image target", () => {
    const targets = load(`
[[target]]
name = "AWS kernel"
kernel = "./bzImage-test"
command = "uname -r | grep -e aws$"

[[target]]
name = "Oracle image"
image = "./disk.qcow2"
command = "ls -l /mnt/vmtest && cat /proc/thiswillfail"
`)
    expect(isVmtestConfig(join(dir, 'vmtest.toml'))).toBe(true)
    expect(targets.map((t) => [t.name, t.mode])).toEqual([
      ['AWS kernel', 'kernel'],
      ['Oracle image', 'image'],
    ])
    expect(targets[0]!.options).toEqual({
      kernel: join(dir, 'bzImage-test'),
      mounts: [{ host: dir, guest: '/mnt/vmtest', writable: true }],
    })
    expect(targets[0]!.cwd).toBe(dir)
    expect(targets[1]!.options.image).toBe(join(dir, 'disk.qcow2'))
    expect(targets[1]!.cwd).toBe('/mnt/vmtest')
  })

  test('every field: vm table, mounts, kernel_args, rootfs, and kernel names', () => {
    const [target] = load(`
[[target]]
name = "all"
kernel = "debian:trixie"
kernel_args = "quiet  loglevel=3"
rootfs = "rootfs"
arch = "x86_64"
uefi = false
command = "true"
[target.vm]
num_cpus = 3
memory = "2G"
extra_args = ["-device", "virtio-balloon-device"]
[target.vm.mounts]
"/tmp/hosttmp" = { host_path = "/tmp", writable = true }
`)
    expect(target!.options).toEqual({
      kernel: 'debian:trixie',
      kernelArgs: ['quiet', 'loglevel=3'],
      hostRoot: join(dir, 'rootfs'),
      cpus: 3,
      memoryMiB: 2048,
      qemuArgs: ['-device', 'virtio-balloon-device'],
      mounts: [
        { host: dir, guest: '/mnt/vmtest', writable: true },
        { host: '/tmp', guest: '/tmp/hosttmp', writable: true },
      ],
    })
  })

  test('what vmctl cannot honour is an error naming the field', () => {
    const base = 'name = "t"\nkernel = "./bzImage-test"\ncommand = "true"\n'
    expect(() => load(`[[target]]\n${base}arch = "aarch64"\n`)).toThrow(
      /target 1 \(t\): arch = "aarch64" cannot be honoured/,
    )
    expect(() => load(`[[target]]\n${base}uefi = true\n`)).toThrow(/uefi = true cannot be honoured/)
    expect(() => load(`[[target]]\n${base}[target.vm]\nbios = "OVMF.fd"\n`)).toThrow(
      /vm\.bios cannot be honoured/,
    )
    expect(() => load(`[[target]]\n${base}colour = "red"\n`)).toThrow(/unknown field colour/)
    expect(() => load('[[target]]\nname = "t"\ncommand = "true"\n')).toThrow(
      /one of kernel and image is required/,
    )
    expect(() => load('[[target]]\nname = "t"\nkernel = "./nope"\ncommand = "true"\n')).toThrow(
      /nope does not exist/,
    )
  })

  test('memory sizes as QEMU reads them', () => {
    expect([
      memoryMiB('4G'),
      memoryMiB('256M'),
      memoryMiB('512'),
      memoryMiB('1.5G'),
      memoryMiB('lots'),
    ]).toEqual([4096, 256, 512, 1536, undefined])
  })
})
