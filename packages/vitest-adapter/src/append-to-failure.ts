import type { TestContext } from 'vitest'

/**
 * Appends text to a failed test's errors. They are already serialised for the reporter at this
 * point (plain objects), which is what lets us add to them after the test body has thrown.
 */
export function appendToFailure(task: TestContext['task'], text: string): void {
  const error = task.result?.errors?.[0]
  if (!error) return
  error.message = `${error.message}${text}`
  if (typeof error.stack === 'string')
    error.stack = error.stack.replace(/^[^\n]*/, (first) => `${first}${text}`)
}
