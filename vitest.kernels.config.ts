import { defineConfig } from 'vitest/config'

// `pnpm test:kernels`: everything about kernels other than the default one, with the whole matrix
// (examples/7-kernel-matrix on 5.10, 6.1 and 6.12: `pnpm test` leaves 5.10 out to stay within CI's time).
export default defineConfig({
  test: {
    include: [
      'packages/core/src/kernels/*.test.ts',
      'packages/cli/src/vmtest.vm.test.ts',
      'examples/7-kernel-matrix/**/*.test.ts',
    ],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 600_000,
    hookTimeout: 600_000,
    reporters: ['default'],
    env: { VMCTL_KERNEL_MATRIX: 'all' },
    globalSetup: ['./vitest.global-setup.ts', './packages/vitest-adapter/src/global-setup.ts'],
  },
})
