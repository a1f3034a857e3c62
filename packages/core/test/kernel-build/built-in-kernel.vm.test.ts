import { beforeAll, describe, expect, test } from 'vitest'
import { cacheDir, VM } from '../../src/index.js'
import { checkKernelFits, kernelConfig } from '../../src/kernels/kernel-fit.js'
import { resolveKernel } from '../../src/kernels/resolve-kernel.js'
import { TEST_IMAGE } from '../../src/test-support/test-images.js'
import { type BuiltKernel, CONFIG_FRAGMENT, ensureBuiltInKernel } from './built-in-kernel.js'

// `pnpm test:kernel-build`: the proof that a kernel with every driver built in and no modules boots
// in both of vmctl's modes. The build (minutes, niced) happens once; later runs find it cached.
let kernel: BuiltKernel

describe('a kernel built from linux-source with every driver built in (vm)', () => {
  beforeAll(async () => {
    kernel = await ensureBuiltInKernel(cacheDir())
    const t = kernel.timings
    process.stderr.write(
      `kernel-build: ${kernel.built ? 'built' : 'cached'} ${kernel.release} from linux-source ${t.sourceVersion}: download ${t.downloadS} s, unpack ${t.unpackS} s, configure ${t.configureS} s, make -j${t.jobs} bzImage ${t.buildS} s (load ${t.loadBefore} → ${t.loadAfter})\n`,
    )
  }, 120 * 60_000)

  test('has no module support and passes the kernel-fit check in every mode', async () => {
    const resolved = await resolveKernel({ explicit: kernel.bzImage }, cacheDir())
    expect(resolved.release).toBe(kernel.release)
    expect(resolved.modulesDir).toBeUndefined()
    const config = kernelConfig(resolved)
    expect(config?.get('CONFIG_VIRTIO_BLK')).toBe('y')
    expect(config?.has('CONFIG_MODULES')).toBe(false)
    for (const hostRoot of [true, false])
      for (const transport of ['virtio-serial', 'vsock'] as const)
        expect(() => checkKernelFits(resolved, { hostRoot, transport })).not.toThrow()
  })

  test('boots in kernel mode with the host root and runs commands', async () => {
    await using vm = await VM.up({ kernel: kernel.bzImage })
    expect((await vm.exec('uname -r')).stdout.trim()).toBe(kernel.release)
    // No CONFIG_MODULES: the kernel has no /proc/modules at all, and nothing was insmod'ed.
    expect((await vm.exec('test -e /proc/modules', { reject: false })).exitCode).toBe(1)
    // The host's tree through 9p, the kernel's own config through /proc (IKCONFIG_PROC).
    expect((await vm.exec(`grep -c '^CONFIG_' ${CONFIG_FRAGMENT}`)).stdout.trim()).toMatch(/^\d+$/)
    expect((await vm.exec('zcat /proc/config.gz | grep -x CONFIG_9P_FS=y')).stdout.trim()).toBe(
      'CONFIG_9P_FS=y',
    )
    expect((await vm.exec('cat /sys/class/net/eth0/operstate')).stdout.trim()).toBe('up')
  })

  test('boots a Debian image with it', async () => {
    await using vm = await VM.up({ kernel: kernel.bzImage, image: TEST_IMAGE })
    expect((await vm.exec('uname -r')).stdout.trim()).toBe(kernel.release)
    expect((await vm.exec('cat /etc/debian_version')).stdout.trim()).toMatch(/^12\./)
    expect((await vm.exec(`echo '{"a":1}' | jq .a`)).stdout.trim()).toBe('1')
  })
})
