import { defineConfig } from 'vitest/config'
import RetriedTestsReporter from './packages/core/src/test-support/retried-tests-reporter.js'
import SlowestFirstSequencer from './packages/core/src/test-support/slowest-first.js'

// Tests that boot VMs are CPU-bound under TCG; two forks keep a 2-core machine busy without
// starving QEMU. VM tests carry "vm" in their describe name so a reader knows which are slow.
export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'examples/*/**/*.test.ts', 'e2e/**/*.test.ts'],
    // Run by `pnpm test:kernels` (vitest.kernels.config.ts), to keep this run inside CI's time: a
    // second kernel download into an empty cache, a custom kernel's module tree, vmtest's configs.
    // What stays here of them: named-kernel.vm.test.ts, the matrix on 6.1 and 6.12, their unit tests
    // (kernel-fit.test.ts refuses the cloud kernel's config without a VM).
    exclude: [
      '**/node_modules/**',
      'packages/core/src/kernels/kernel-fetch.vm.test.ts',
      'packages/core/src/kernels/custom-kernel.vm.test.ts',
      'packages/core/src/kernels/cloud-kernel.vm.test.ts',
      'packages/cli/src/vmtest.vm.test.ts',
    ],
    pool: 'forks',
    maxWorkers: 2,
    // The slowest files first, by the durations of a whole run in file-seconds.json: the run's wall
    // time is its two workers' makespan, and a fresh clone has no vitest cache to order by.
    sequence: { sequencer: SlowestFirstSequencer },
    // Longer than a VM's own boot deadline (180 s under TCG), so a boot that does not finish fails
    // with vmctl's error (its console tail and cause), not with vitest's timeout racing it.
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // Under TCG on two shared cores, about one fresh-clone run in three here had one VM test stall
    // past its bound (a different one each time: a hard restart, a boot with 9p mounts). One more
    // try keeps such a stall from sinking the run; the reporter marks the retry, a test that fails
    // for a reason of its own fails twice. docs/vm-test-stalls.md: what was found, how to look.
    retry: 1,
    // The second prints the errors of a retried test's failed attempts, which vitest 4 drops when
    // the retry passes.
    reporters: ['default', new RetriedTestsReporter()],
    // The second holds VM.upShared() VMs until the run ends (its teardown runs first).
    globalSetup: ['./vitest.global-setup.ts', './packages/vitest-adapter/src/global-setup.ts'],
  },
})
