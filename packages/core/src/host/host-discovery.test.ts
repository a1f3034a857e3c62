import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { KernelNotFoundError, QemuNotFoundError } from '../errors.js'
import { chooseAccelerator, hostTscKhz } from './accelerator.js'
import { bzImageRelease, kernelFormat, locateKernel } from './kernel-locator.js'
import { locateQemu } from './qemu-locator.js'

// One directory for the file's temporary files, removed when it ends.
const work = mkdtempSync(join(tmpdir(), 'vmctl-host-discovery-test-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

function fakeBzImage(release: string): string {
  const buf = Buffer.alloc(0x400)
  buf.write('HdrS', 0x202, 'latin1')
  buf.writeUInt16LE(0x300 - 0x200, 0x20e)
  buf.write(`${release} (builder@host) #1 SMP`, 0x300, 'latin1')
  const path = join(mkdtempSync(join(work, 'kernel-')), 'vmlinuz')
  writeFileSync(path, buf)
  return path
}

describe('kernel locator', () => {
  test('reads the format and release of a bzImage', () => {
    const path = fakeBzImage('6.9.1-test')
    expect(kernelFormat(path)).toBe('bzimage')
    expect(bzImageRelease(path)).toBe('6.9.1-test')
  })

  test('an explicit kernel wins over everything else', () => {
    const path = fakeBzImage('6.9.2-test')
    const kernel = locateKernel({ explicit: path, env: { VMCTL_KERNEL: '/nope' } })
    expect(kernel).toMatchObject({
      image: path,
      format: 'bzimage',
      release: '6.9.2-test',
      source: 'option kernel',
    })
  })

  test('nothing found: one error listing every place tried and the setup command', () => {
    const empty = mkdtempSync(join(work, 'cache-'))
    let error: unknown
    try {
      locateKernel({ env: { VMCTL_CACHE_DIR: empty }, hostRelease: 'no-such-release' })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(KernelNotFoundError)
    const message = (error as Error).message
    expect(message).toContain(join(empty, 'kernels', 'default'))
    expect(message).toContain('/boot/vmlinuz-no-such-release')
    expect(message).toMatch(/Fix: .*npx vmctl setup/)
  })

  test('a file that is not a kernel is named as such', () => {
    const path = join(mkdtempSync(join(work, 'k-')), 'notes.txt')
    writeFileSync(path, 'not a kernel')
    expect(() => locateKernel({ explicit: path })).toThrow(/not a kernel image/)
  })
})

describe('QEMU and accelerator discovery', () => {
  test('QEMU missing from PATH names the package', () => {
    expect(() => locateQemu({ PATH: '/nonexistent' })).toThrow(QemuNotFoundError)
    expect(() => locateQemu({ PATH: '/nonexistent' })).toThrow(/apt-get install qemu-system-x86/)
  })

  test('VMCTL_ACCEL=tcg forces TCG without probing; nonsense is refused', () => {
    const cache = mkdtempSync(join(work, 'accel-'))
    expect(chooseAccelerator(cache, { VMCTL_ACCEL: 'tcg' })).toMatchObject({ accel: 'tcg', probe: false })
    expect(() => chooseAccelerator(cache, { VMCTL_ACCEL: 'warp' })).toThrow(/kvm", "tcg" or "auto"/)
  })

  test('the host TSC rate comes from the nominal clock in the CPU model name', () => {
    expect(hostTscKhz('model name\t: Intel(R) Xeon(R) Processor @ 2.50GHz\ncpu MHz\t\t: 1800.000')).toBe(
      2_500_000,
    )
    expect(hostTscKhz('cpu MHz\t\t: 3000.000')).toBe(3_000_000)
    expect(hostTscKhz('')).toBeUndefined()
  })
})
