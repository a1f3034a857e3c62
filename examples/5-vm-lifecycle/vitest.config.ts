import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    // VMs boot in seconds with KVM and ~10 s under TCG; give slow CI machines room.
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
})
