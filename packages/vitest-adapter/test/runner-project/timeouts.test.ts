// The timeout each way of registering a test ends up with, under the default config (5 s), on the
// vitest version installed next to this file. Run by src/runner-versions.vm.test.ts.
import { expect, test, VM_BOOT_BUDGET_MS } from '@vmctl/vitest'
import { describe } from 'vitest'

const budgeted = 5_000 + VM_BOOT_BUDGET_MS

test('plain', ({ task }) => expect(task.timeout).toBe(budgeted))
test('options without a timeout', { retry: 0 }, ({ task }) => expect(task.timeout).toBe(budgeted))
test('its own timeout', ({ task }) => expect(task.timeout).toBe(7_000), 7_000)
test('its own timeout in options', { timeout: 8_000 }, ({ task }) => expect(task.timeout).toBe(8_000))
test.concurrent('concurrent', ({ task }) => expect(task.timeout).toBe(budgeted))
test.skipIf(false)('skipIf', ({ task }) => expect(task.timeout).toBe(budgeted))
test.runIf(true).concurrent('runIf().concurrent', ({ task }) => expect(task.timeout).toBe(budgeted))
test.for([1, 2])('for %i', (_n, { task }) => expect(task.timeout).toBe(budgeted))
test.each([1])('each %i', (n) => expect(n).toBe(1))
test.skip('skipped', () => {})
test.todo('todo')

const extended = test.extend<{ answer: number }>({ answer: 42 })
extended('extend', ({ answer, task }) => {
  expect(answer).toBe(42)
  expect(task.timeout).toBe(budgeted)
})

describe('a describe block with a timeout', { timeout: 9_000 }, () => {
  test('keeps it', ({ task }) => expect(task.timeout).toBe(9_000))
  extended('keeps it through extend', ({ task }) => expect(task.timeout).toBe(9_000))
})

describe('override', () => {
  test.override({ vmOptions: { memoryMiB: 256 } })
  test('sets fixture values for the block', ({ vmOptions }) => expect(vmOptions).toEqual({ memoryMiB: 256 }))
})
