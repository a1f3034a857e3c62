import { describe, expect, it } from 'vitest'
import { type FinishedTest, retriedTestReport } from './retried-tests-reporter.js'

const base: FinishedTest = {
  file: 'packages/core/src/images/images.vm.test.ts',
  fullName: 'images vm > provisioning',
  state: 'passed',
  retries: 1,
  errorCount: 1,
  startTime: Date.UTC(2026, 11, 1, 1, 2, 3),
  durationMs: 263_400,
}

describe('retriedTestReport', () => {
  it('names the test, the attempt and its error when a retry passed', () => {
    expect(retriedTestReport(base)).toEqual([
      {
        heading:
          'RETRIED packages/core/src/images/images.vm.test.ts > images vm > provisioning: passed on attempt 2 of 2, ' +
          '263.4 s for all attempts from 01:02:03 UTC\n  attempt 1 failed:',
        errors: [0],
      },
    ])
  })

  it('gives each failed attempt its own error when there is one per attempt', () => {
    const sections = retriedTestReport({ ...base, retries: 2, errorCount: 2 })
    expect(sections.map((s) => s.errors)).toEqual([[0], [1]])
    expect(sections[1]?.heading).toBe('  attempt 2 failed:')
  })

  it('lists all errors together when the attempts cannot be told apart', () => {
    const sections = retriedTestReport({ ...base, retries: 1, errorCount: 2 })
    expect(sections).toHaveLength(1)
    expect(sections[0]?.heading).toMatch(/ attempt 1 failed with these errors:$/)
    expect(sections[0]?.errors).toEqual([0, 1])
  })

  it('prints nothing for a test that passed at once, or failed (the default reporter prints that)', () => {
    expect(retriedTestReport({ ...base, retries: 0, errorCount: 0 })).toEqual([])
    expect(retriedTestReport({ ...base, state: 'failed', errorCount: 2 })).toEqual([])
    expect(retriedTestReport({ ...base, state: 'skipped', retries: 0 })).toEqual([])
  })
})
