import { afterAll, describe, expect, test } from 'vitest'
import { listTemplates, VM, type VmctlError } from '../index.js'
import { cacheDir } from '../paths.js'
import { fetchNamedKernel } from './resolve-kernel.js'

// `pnpm test:kernels` (not `pnpm test`: a second kernel download into an empty cache). The
// refusal itself is also checked without a VM by kernel-fit.test.ts, in `pnpm test`.
const saved = process.env.VMCTL_KERNEL
delete process.env.VMCTL_KERNEL
afterAll(() => {
  if (saved !== undefined) process.env.VMCTL_KERNEL = saved
})

describe('a kernel without 9p (network, vm)', () => {
  test('debian:bookworm/cloud (no 9p) is refused before boot for a host root, names the way out, leaves no template; that way out boots', async () => {
    const cloud = await fetchNamedKernel(cacheDir(), 'debian:bookworm/cloud')
    const started = performance.now()
    const error = (await VM.up({ kernel: 'debian:bookworm/cloud' }).catch((e) => e)) as VmctlError
    const refusedMs = performance.now() - started
    console.log(`cloud kernel refused in ${Math.round(refusedMs)} ms`)
    expect(error.code).toBe('KERNEL_UNFIT')
    expect(error.message).toMatch(/missing 9p over virtio .*CONFIG_9P_FS is not set/)
    expect(error.message).toMatch(/Fix: hostRoot: false .* or an image/)
    expect(refusedMs).toBeLessThan(5_000)
    const hostRootTemplates = listTemplates(cacheDir()).filter(
      (t) => t.summary.includes(cloud.release) && t.summary.includes('host root'),
    )
    expect(hostRootTemplates).toEqual([])

    await using vm = await VM.up({ kernel: 'debian:bookworm/cloud', hostRoot: false })
    expect((await vm.exec('uname -r')).stdout.trim()).toBe(cloud.release)
  }, 900_000)
})
