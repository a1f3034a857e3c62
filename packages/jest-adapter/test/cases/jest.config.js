module.exports = {
  testMatch: ['**/*.case.js'],
  setupFilesAfterEnv: ['@vmctl/jest/matchers'],
  testTimeout: 180_000,
}
