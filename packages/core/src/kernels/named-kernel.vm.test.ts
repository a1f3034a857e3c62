import { afterAll, describe, expect, test } from 'vitest'
import { listCachedKernels, VM } from '../index.js'
import { cacheDir } from '../paths.js'

// Uses the shared cache (~/.cache/vmctl): Debian 13's kernel is fetched once (~110 MB, about a
// minute to unpack on a busy host) and every later run, and every other test file naming it,
// uses the cached one. The template of this VM is per kernel, like any other VM definition.
const saved = process.env.VMCTL_KERNEL
delete process.env.VMCTL_KERNEL
afterAll(() => {
  if (saved !== undefined) process.env.VMCTL_KERNEL = saved
})

describe('a kernel by name (network, vm)', () => {
  test('debian:trixie boots Debian 13’s 6.12 kernel, not the default', async () => {
    await using vm = await VM.up({ kernel: 'debian:trixie' })
    const release = (await vm.exec('uname -r')).stdout.trim()
    expect(release).toMatch(/^6\.12\.\d+\+deb13-amd64$/)
    const cached = listCachedKernels(cacheDir()).find((k) => k.release === release)
    expect(cached?.names).toContain('debian:trixie')
    // The module tree is this kernel's (compressed .ko.xz modules): one outside the initramfs loads.
    await vm.exec('modprobe dummy && grep -q "^dummy " /proc/modules')
  }, 900_000)
})
