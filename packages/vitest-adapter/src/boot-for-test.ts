/**
 * A test's timeout covers its fixtures: when it passes while a VM fixture is still booting, vitest
 * fails the test with its own "Test timed out" and moves on, but the boot goes on, and the VM it
 * hands over later would reach a fixture whose test is over: nobody would end it before the worker
 * exits. This watches the boot for the test: the failure says it was the boot that ran out of time
 * and how to fix that, and a VM that comes too late is ended at once.
 */
import type { VM } from '@vmctl/core'
import type { TestContext } from 'vitest'
import { appendToFailure } from './append-to-failure.js'

export type BootingTest = Pick<TestContext, 'task'> & Partial<Pick<TestContext, 'signal' | 'onTestFailed'>>

/** Thrown in place of handing a VM to a test that is already over; vitest has reported the test. */
export class BootOutlivedTestError extends Error {
  readonly code = 'VMCTL_BOOT_OUTLIVED_TEST'
}

/** What a test that timed out while its VM booted adds to vitest's "Test timed out" error. */
export function bootOutlivedMessage(fixture: string, timeoutMs: number | undefined, bootMs: number): string {
  const timeout = timeoutMs ? ` (${timeoutMs} ms)` : ''
  return (
    `\n\nvmctl: the test's timeout${timeout} passed while its \`${fixture}\` fixture was still booting ` +
    `the VM (${(bootMs / 1000).toFixed(1)} s so far): the boot counts against the test's timeout, and ` +
    'the VM is ended as soon as its boot is done. Fix: leave the timeout out of test() and its describe ' +
    'block (@vmctl/vitest then gives the test testTimeout plus VM_BOOT_BUDGET_MS for the boot), or ' +
    'give one that covers the boot too: a boot under TCG takes seconds to minutes on a loaded host.'
  )
}

function testIsOver(context: BootingTest): boolean {
  const state = context.task.result?.state
  return context.signal?.aborted === true || (state !== undefined && state !== 'run')
}

/**
 * Boots a VM for the test in `context`. If the test is over by the time the VM is there, `release`
 * ends it (destroy for a VM of the test's own; nothing for a shared one, whose lease is the
 * process's) and BootOutlivedTestError is thrown instead of handing it over.
 */
export async function bootForTest(
  context: BootingTest,
  fixture: string,
  boot: () => Promise<VM>,
  release: (vm: VM) => Promise<void>,
): Promise<VM> {
  const started = performance.now()
  let booting = true
  context.onTestFailed?.(() => {
    if (booting)
      appendToFailure(
        context.task,
        bootOutlivedMessage(fixture, context.task.timeout, performance.now() - started),
      )
  })
  let vm: VM
  try {
    vm = await boot()
  } finally {
    booting = false
  }
  if (!testIsOver(context)) return vm
  await release(vm)
  throw new BootOutlivedTestError(
    `the VM of \`${fixture}\` was booted after its test had ended; it is released`,
  )
}
