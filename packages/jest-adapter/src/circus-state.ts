/**
 * jest-circus keeps its state on the test file's global under a private symbol; helpers that run in
 * any environment read it to tell whether the current test failed and to skip tests.
 */
export interface CircusTest {
  name: string
  mode?: string
  errors: unknown[]
  type?: string
}
export interface CircusDescribeBlock {
  children: Array<CircusTest | CircusDescribeBlock>
  type?: string
  mode?: string
}
interface CircusState {
  currentlyRunningTest?: CircusTest | null
  currentDescribeBlock?: CircusDescribeBlock
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
