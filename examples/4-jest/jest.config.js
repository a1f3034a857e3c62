/** @type {import('jest').Config} */
module.exports = {
  // Each test file gets a VM in the global `vm` (one VM per file; see web.spec.js for one per test).
  testEnvironment: '@vmctl/jest/environment',
  // Adds toSucceed(), toHaveListeningPort() and the rest to expect.
  setupFilesAfterEnv: ['@vmctl/jest/matchers'],
  // Keep VMs from useSharedVm()/VM.upShared() until the run ends.
  globalSetup: '@vmctl/jest/global-setup',
  globalTeardown: '@vmctl/jest/global-teardown',
  testMatch: ['**/*.spec.js'],
  testTimeout: 180_000,
}
