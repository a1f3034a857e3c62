import { defineConfig } from 'vitest/config'

// `pnpm test:kernel-build`: a kernel built from Debian's linux-source with every driver built in,
// booted in both modes (packages/core/test/kernel-build/). Not part of `pnpm test`: the first run
// builds a kernel (minutes of CPU, niced).
export default defineConfig({
  test: {
    include: ['packages/*/test/kernel-build/*.vm.test.ts'],
    pool: 'forks',
    testTimeout: 10 * 60_000,
    hookTimeout: 120 * 60_000,
    reporters: ['default'],
    globalSetup: ['./vitest.global-setup.ts'],
  },
})
