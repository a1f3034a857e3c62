import { relative } from 'node:path'
import type { Reporter, TestCase, Vitest } from 'vitest/node'

/** What vitest's TestCase gives for one finished test, the part this reporter reads. */
export interface FinishedTest {
  /** The test file, relative to the run's root. */
  file: string
  fullName: string
  state: 'passed' | 'failed' | 'skipped' | 'pending'
  /** The attempts before the last one (vitest's retryCount). */
  retries: number
  /** Every attempt's errors, in order: vitest keeps those of the failed attempts on a test that passed. */
  errorCount: number
  startTime: number
  durationMs: number
}

/** One block of the report: a heading, then the errors it names (indexes into the test's errors). */
export interface RetriedTestSection {
  heading: string
  errors: number[]
}

/**
 * What to print for a test that passed on a retry, or nothing. vitest 4 keeps the failed attempts'
 * errors in a passed test's result but prints none of them (vitest 3 did), so an attempt that ran
 * into a stall for minutes left no cause in the CI log. A test that failed on every attempt is
 * left to the default reporter, which prints all its errors.
 */
export function retriedTestReport(test: FinishedTest): RetriedTestSection[] {
  if (test.state !== 'passed' || test.retries === 0) return []
  const attempts = test.retries + 1
  const started = new Date(test.startTime).toISOString().slice(11, 19)
  const title =
    `RETRIED ${test.file} > ${test.fullName}: passed on attempt ${attempts} of ${attempts}, ` +
    `${(test.durationMs / 1000).toFixed(1)} s for all attempts from ${started} UTC`
  if (test.errorCount === 0) return [{ heading: `${title}; the failed attempts left no error`, errors: [] }]
  // One error per failed attempt is the usual case (a test's first throw ends its attempt); an
  // afterEach or cleanup that also threw adds one, and then which attempt it was is not known.
  if (test.errorCount === test.retries)
    return Array.from({ length: test.retries }, (_, i) => ({
      heading: i === 0 ? `${title}\n  attempt ${i + 1} failed:` : `  attempt ${i + 1} failed:`,
      errors: [i],
    }))
  const failed = test.retries === 1 ? 'attempt 1' : `attempts 1-${test.retries}`
  return [
    {
      heading: `${title}\n  ${failed} failed with these errors:`,
      errors: Array.from({ length: test.errorCount }, (_, i) => i),
    },
  ]
}

/**
 * Beside vitest's default reporter (vitest.config.ts): prints a retried test's earlier errors, with
 * their stacks, when the test ends (docs/vm-test-stalls.md says how to read them).
 */
export default class RetriedTestsReporter implements Reporter {
  private vitest: Vitest | undefined

  onInit(vitest: Vitest): void {
    this.vitest = vitest
  }

  onTestCaseResult(testCase: TestCase): void {
    const vitest = this.vitest
    const diagnostic = testCase.diagnostic()
    const result = testCase.result()
    if (!vitest || !diagnostic) return
    const errors = result.errors ?? []
    const sections = retriedTestReport({
      file: relative(vitest.config.root, testCase.module.moduleId),
      fullName: testCase.fullName,
      state: result.state,
      retries: diagnostic.retryCount,
      errorCount: errors.length,
      startTime: diagnostic.startTime,
      durationMs: diagnostic.duration,
    })
    for (const section of sections) {
      vitest.logger.error(section.heading)
      for (const i of section.errors) vitest.logger.printError(errors[i], { project: testCase.project })
    }
  }
}
