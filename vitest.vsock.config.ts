import { defineConfig } from 'vitest/config'

// `pnpm test:vsock`: the vsock transport tested against a nested VM (see packages/core/test/vsock.nested.ts).
export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.nested.ts'],
    pool: 'forks',
    testTimeout: 60 * 60_000,
    hookTimeout: 60 * 60_000,
    reporters: ['default'],
    globalSetup: ['./vitest.global-setup.ts'],
  },
})
