// One test, three kernels: Debian 11's 5.10, Debian 12's 6.1 and Debian 13's 6.12, each fetched
// from Debian's archive on first use and cached. vitest's own `describe.each` makes the matrix;
// `test.override` gives each block its kernel, so each kernel has its own VM template.
// `pnpm test` runs the two kernels the rest of the suite fetches anyway (6.1 and 6.12), to stay
// within CI's time; `pnpm test:kernels` (VMCTL_KERNEL_MATRIX=all) runs all three.
import { expect, test } from '@vmctl/vitest'
import { describe } from 'vitest'

const KERNELS = [
  // memory.peak came in 5.19; the io_uring_disabled sysctl in 6.6.
  { kernel: 'debian:bullseye', release: /^5\.10\./, memoryPeak: false, ioUringSysctl: false },
  { kernel: 'debian:bookworm', release: /^6\.1\./, memoryPeak: true, ioUringSysctl: false },
  { kernel: 'debian:trixie', release: /^6\.12\./, memoryPeak: true, ioUringSysctl: true },
].filter(({ kernel }) => process.env.VMCTL_KERNEL_MATRIX === 'all' || kernel !== 'debian:bullseye')

describe.each(KERNELS)('on $kernel (vm)', ({ kernel, release, memoryPeak, ioUringSysctl }) => {
  test.override({ vmOptions: { kernel } })

  test('the kernel and what it has', async ({ vm }) => {
    expect(await vm.exec('uname -r')).toHaveStdout(release)
    // A cgroup of our own: memory.peak is in every non-root cgroup of a kernel that has it.
    await vm.exec('echo +memory > /sys/fs/cgroup/cgroup.subtree_control && mkdir /sys/fs/cgroup/probe')
    const peak = await vm.exec('test -e /sys/fs/cgroup/probe/memory.peak', { reject: false })
    expect(peak.exitCode === 0, 'memory.peak').toBe(memoryPeak)
    const sysctl = await vm.exec('test -e /proc/sys/kernel/io_uring_disabled', { reject: false })
    expect(sysctl.exitCode === 0, 'kernel.io_uring_disabled').toBe(ioUringSysctl)
  })
})
