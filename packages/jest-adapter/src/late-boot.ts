import { BOOT_BUDGET_ENV, VM_BOOT_BUDGET_MS } from '@vmctl/testing'

/**
 * What a test whose useVm() boot outlived its beforeEach hook adds to jest's "Exceeded timeout ...
 * for a hook": the hook's timeout is vmctl's boot budget, not the test's, so jest's advice (a
 * timeout on the test) would not help.
 */
export function lateBootMessage(budgetMs: number, bootMs: number): string {
  return (
    `\n\nvmctl: useVm() was still booting the test's VM when its hook's timeout passed (${budgetMs} ms, ` +
    `the boot budget; ${(bootMs / 1000).toFixed(1)} s so far): the VM is destroyed as soon as its boot ` +
    `ends. A timeout on the test does not cover the boot. Fix: raise ${BOOT_BUDGET_ENV} (default ` +
    `${VM_BOOT_BUDGET_MS}), or unset it; a boot under TCG takes seconds to minutes on a loaded host.`
  )
}
