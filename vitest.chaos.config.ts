import { defineConfig } from 'vitest/config'

// `pnpm test:chaos`: the crash-safety rounds at full length (100; CHAOS_ROUNDS to change) and the
// agent-restart trials at 20 per delay, one file at a time (they measure teardown times).
export default defineConfig({
  test: {
    include: [
      'packages/core/src/supervisor/chaos.vm.test.ts',
      'packages/core/src/vm/agent-restart.vm.test.ts',
    ],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 3 * 60 * 60_000,
    hookTimeout: 10 * 60_000,
    reporters: ['default'],
    env: { VMCTL_CHAOS: 'full' },
    globalSetup: ['./vitest.global-setup.ts'],
  },
})
