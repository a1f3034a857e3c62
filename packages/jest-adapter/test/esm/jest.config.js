export default {
  testMatch: ['**/*.test.mjs'],
  globalSetup: '@vmctl/jest/global-setup',
  globalTeardown: '@vmctl/jest/global-teardown',
  testTimeout: 180_000,
}
