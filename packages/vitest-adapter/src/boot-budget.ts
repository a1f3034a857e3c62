/**
 * vitest fixes a test's timeout when the test is registered, and resolves fixtures inside the timed
 * test function: a `vm` fixture's boot would count against vitest's 5 s default. So `@vmctl/vitest`'s
 * `test` registers its tests with a timeout of the configured one plus the boot budget
 * (VM_BOOT_BUDGET_MS, or VMCTL_BOOT_BUDGET_MS), unless the test (or its describe block) has a
 * timeout of its own, which is then the test's whole budget.
 * A hanging boot still ends with vmctl's own error (BootTimeoutError), well within the budget.
 *
 * Only vitest's public call signatures are relied on (`test(name, fn, timeout)`,
 * `test(name, options, fn)`, the chain modifiers, `each`/`for`/`extend`/`skipIf`/`runIf`), so the
 * wrapper works the same on vitest 3.2 and 4.x.
 */
import { bootBudgetMs } from '@vmctl/testing'
import * as vitest from 'vitest'

type Fn = (...args: unknown[]) => unknown
interface SuiteCollector {
  options?: { timeout?: number }
}

// The describe block being collected, for its `timeout` option. vitest 4.1 has it on TestRunner and
// warns on imports of vitest/suite; 3.2 and 4.0 have only vitest/suite.
const runnerStatics = (vitest as unknown as { TestRunner?: { getCurrentSuite?: () => SuiteCollector } })
  .TestRunner
const currentSuite: () => SuiteCollector | undefined =
  runnerStatics?.getCurrentSuite ??
  (await import('vitest/suite').then(
    (suite) => suite.getCurrentSuite as unknown as () => SuiteCollector | undefined,
    () => () => undefined, // a vitest with neither: describe timeouts are not seen, test ones are
  ))

/** vitest's default testTimeout, as configured (read from the worker's state; 5 s if unknown). */
function configuredTestTimeout(): number {
  const state = (globalThis as { __vitest_worker__?: { config?: { testTimeout?: number } } })
    .__vitest_worker__
  return state?.config?.testTimeout ?? 5_000
}

/** The timeout to register a test with when the caller gave none; undefined to leave it to vitest. */
function defaultTimeout(): number | undefined {
  let suiteTimeout: number | undefined
  try {
    suiteTimeout = currentSuite()?.options?.timeout
  } catch {}
  // The describe block's timeout is the user's; passing it on keeps it (3.2's test.extend drops it).
  if (suiteTimeout !== undefined) return suiteTimeout
  const base = configuredTestTimeout()
  if (base <= 0 || base === Number.POSITIVE_INFINITY) return undefined // no timeout at all
  return base + bootBudgetMs()
}

/** The arguments of a test registration, with the boot budget added when no timeout was given. */
export function withBootBudget(args: unknown[]): unknown[] {
  const [name, optionsOrFn, fnOrTimeout, ...rest] = args
  if (typeof optionsOrFn === 'function' && fnOrTimeout === undefined) {
    const timeout = defaultTimeout()
    return timeout === undefined ? args : [name, optionsOrFn, timeout, ...rest]
  }
  if (optionsOrFn && typeof optionsOrFn === 'object' && typeof fnOrTimeout === 'function') {
    if ((optionsOrFn as { timeout?: number }).timeout !== undefined) return args
    const timeout = defaultTimeout()
    return timeout === undefined ? args : [name, { ...optionsOrFn, timeout }, fnOrTimeout, ...rest]
  }
  return args // a timeout of the caller's, or a test without a function (todo)
}

const MODIFIERS = new Set(['only', 'skip', 'todo', 'concurrent', 'sequential', 'fails'])
const RETURN_TESTS = new Set(['extend', 'skipIf', 'runIf'])
const REGISTRARS = new Set(['each', 'for'])

/**
 * `test` with the boot budget on every way of registering a test, and `override()` on every vitest
 * version: vitest 4 deprecates `scoped()` for `override()`, 3.2 has only `scoped()` (same meaning:
 * fixture values for the current file or describe block). Both names call whichever exists, so
 * neither warns.
 */
export function budgeted<T extends object>(test: T): T {
  const proxy: T = new Proxy(test, {
    apply: (target, thisArg, args: unknown[]) => Reflect.apply(target as Fn, thisArg, withBootBudget(args)),
    get(target, key) {
      if (key === 'override' || key === 'scoped') {
        return (...args: unknown[]) => {
          const own = Reflect.get(target, 'override') as Fn | undefined
          if (typeof own === 'function') own.apply(target, args)
          else (Reflect.get(target, 'scoped') as Fn).apply(target, args)
          return proxy
        }
      }
      const value = Reflect.get(target, key) as unknown
      if (typeof value !== 'function' || typeof key !== 'string') return value
      if (MODIFIERS.has(key)) return budgeted(value)
      if (RETURN_TESTS.has(key)) {
        return (...args: unknown[]) => {
          const result = (value as Fn).apply(target, args)
          return typeof result === 'function' ? budgeted(result) : result
        }
      }
      if (REGISTRARS.has(key)) {
        return (...cases: unknown[]) => {
          const register = (value as Fn).apply(target, cases) as Fn
          return (...args: unknown[]) => register(...withBootBudget(args))
        }
      }
      return value
    },
  })
  return proxy
}
