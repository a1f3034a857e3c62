/**
 * jest-circus keeps its state on the test file's global under a private symbol; helpers that run in
 * any environment read it to tell whether the current test failed and to skip tests.
 */
export interface CircusTest {
  name: string
  mode?: string
  errors: unknown[]
  type?: string
  /** The test's own timeout; jest uses the run's testTimeout when it is unset. */
  timeout?: number
}
export interface CircusDescribeBlock {
  children: Array<CircusTest | CircusDescribeBlock>
  type?: string
  mode?: string
}
interface CircusState {
  currentlyRunningTest?: CircusTest | null
  currentDescribeBlock?: CircusDescribeBlock
  testTimeout?: number
}

export function circusState(global: object): CircusState | undefined {
  const symbol = Object.getOwnPropertySymbols(global).find((s) => s.description === 'JEST_STATE_SYMBOL')
  return symbol ? ((global as Record<symbol, CircusState>)[symbol] ?? undefined) : undefined
}

/** Marks every test under `block` as skipped (done before they start, from a beforeAll hook). */
export function skipAll(block: CircusDescribeBlock): void {
  for (const child of block.children) {
    if ('children' in child) skipAll(child)
    else child.mode = 'skip'
  }
}

/** Appends text to a failed test's first error, as jest will print it. */
export function appendToErrors(test: CircusTest, text: string): void {
  const first = test.errors[0]
  // A hook's timeout: jest-circus rejects with a string, kept as [message, asyncError].
  if (Array.isArray(first) && typeof first[0] === 'string') {
    first[0] = `${first[0]}${text}`
    return
  }
  const error = (Array.isArray(first) ? first[0] : first) as { message?: string; stack?: string } | undefined
  if (!error || typeof error !== 'object') return
  const before = String(error.message ?? '')
  // jest prints the stack, and the message too unless the stack holds it: change one, not both.
  try {
    if (typeof error.stack === 'string' && before && error.stack.includes(before)) {
      error.stack = error.stack.replace(before, `${before}${text}`)
    } else error.message = `${before}${text}`
  } catch {}
  // A [thrown, asyncStack] pair: jest prints the stack of the second when the first has none.
  if (Array.isArray(first) && first[1] && typeof first[1] === 'object') {
    const asyncError = first[1] as { message?: string; stack?: string }
    try {
      if (!error.stack) asyncError.message = `${asyncError.message ?? ''}${text}`
    } catch {}
  }
}

/**
 * Gives a test that has no timeout of its own the run's testTimeout plus `budget`. jest reads a
 * test's timeout when it calls the test function, after the beforeEach hooks: setting it from a
 * hook or from test_start is in time.
 */
export function addToTimeout(
  test: CircusTest | null | undefined,
  state: CircusState | undefined,
  budget: number,
): void {
  if (!test || test.timeout) return
  test.timeout = (state?.testTimeout ?? 5_000) + budget
}
