import { cpSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { sampleLaunchSpec, writeSampleCache } from '../test-support/sample-launch-spec.js'
import { hostCpuModel, templateKey } from './template-key.js'

// A cache laid out like the real one, with small stand-ins for QEMU, the kernel and the images.
// Which fields count at all is template-key-fields.test.ts; this is about where the files live.
const home = mkdtempSync(join(tmpdir(), 'template-key-'))
afterAll(() => rmSync(home, { recursive: true, force: true }))
const cacheA = join(home, 'a', '.cache', 'vmctl')
writeSampleCache(cacheA)
const spec = sampleLaunchSpec(cacheA)

describe('template key across hosts', () => {
  test('the same cache restored under another $HOME (other paths, mtimes, inodes) keeps its keys', () => {
    const key = templateKey(spec)
    const cacheB = join(home, 'b', 'somewhere', 'else', 'vmctl')
    cpSync(cacheA, cacheB, { recursive: true })
    utimesSync(join(cacheB, 'kernels/6.1.0/vmlinux'), new Date(2001, 1, 1), new Date(2001, 1, 1))
    expect(templateKey(sampleLaunchSpec(cacheB))).toBe(key)
    // What the files hold is the key: another kernel (or QEMU, initramfs, runtime disk) is another.
    writeFileSync(join(cacheB, 'kernels/6.1.0/vmlinux'), 'another kernel')
    expect(templateKey(sampleLaunchSpec(cacheB))).not.toBe(key)
    writeFileSync(join(cacheB, 'kernels/6.1.0/vmlinux'), 'kernel')
    writeFileSync(join(cacheB, 'runtime/rt.ext4'), 'runtime disk, rebuilt')
    expect(templateKey(sampleLaunchSpec(cacheB))).not.toBe(key)
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
