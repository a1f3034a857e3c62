import { defineConfig } from 'vitest/config'

// Runs of the adapter as a user would run it, started by src/runs.vm.test.ts: each case file is run
// in a vitest of its own so that failures, skips and kept VMs can be observed from outside.
export default defineConfig({
  test: {
    root: import.meta.dirname,
    include: ['cases/**/*.case.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 180_000,
    hookTimeout: 180_000,
    globalSetup: ['../src/global-setup.ts'],
  },
})
