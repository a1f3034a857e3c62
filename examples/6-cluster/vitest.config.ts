import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    // Two VMs, two PostgreSQL servers and a base backup: ~1-2 min under TCG, seconds with KVM.
    testTimeout: 180_000,
    hookTimeout: 300_000,
  },
})
