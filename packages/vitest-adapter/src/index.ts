/**
 * @vmctl/vitest: VMs as vitest fixtures. `test` is vitest's, extended with a fresh `vm` per test,
 * `fileVm` and `workerVm` for VMs several tests share, and `expect` knows the VM matchers.
 *
 * @example
 * ```ts
 * import { expect, test } from '@vmctl/vitest'
 *
 * test('a bridge', async ({ vm }) => {
 *   expect(await vm.exec('ip link add br0 type bridge')).toSucceed()
 *   await expect(vm).toHaveProcess('vmctl-agent')
 * })
 * ```
 */
import type { VM, VmNetwork } from '@vmctl/core'
import { type VmMatchers, type VmOptionsInput, vmMatchers } from '@vmctl/testing'
import { test as base, expect, type TestAPI, type TestContext } from 'vitest'
import { budgeted } from './boot-budget.js'
import {
  perTestVm,
  type ScopedVm,
  scopedVm,
  sharedNetworkHandle,
  useScopedVm,
  useSharedVm,
} from './fixtures.js'

expect.extend(vmMatchers)

declare module 'vitest' {
  // biome-ignore lint/suspicious/noExplicitAny: the type parameter must match vitest's declaration to merge.
  interface Assertion<T = any> extends VmMatchers<void> {}
}

export interface VmFixtures {
  /** Options of `vm`: inline, or the path of a JSON file. Override with test.extend/test.override. */
  vmOptions: VmOptionsInput
  /** Options of `fileVm` (file scope). */
  fileVmOptions: VmOptionsInput
  /** Options of `workerVm` (worker scope). */
  workerVmOptions: VmOptionsInput
  /** A fresh VM for this test, destroyed after it (kept under VMCTL_KEEP=1 if the test fails). */
  vm: VM
  /** One VM for all tests of this file that ask for it; booted on first use. */
  fileVm: VM
  /** One VM for all tests of this worker process that ask for it. */
  workerVm: VM
  /** @internal */
  vmctlFileVm: ScopedVm
  /** @internal */
  vmctlWorkerVm: ScopedVm
}

/** What `test.override()` takes: values for the option fixtures, per file or describe block. */
export type VmFixtureOverrides = Partial<Pick<VmFixtures, 'vmOptions' | 'fileVmOptions' | 'workerVmOptions'>>

/** vitest's `test` with the VM fixtures, and `override()` on every supported vitest version. */
export type VmTestAPI = TestAPI<VmFixtures> & {
  /**
   * Sets fixture values for the tests of this file, or of the describe block it is called in
   * (vitest 4's `test.override()`; on vitest 3.2 it calls `test.scoped()`).
   */
  override(fixtures: VmFixtureOverrides): VmTestAPI
}

/**
 * vitest's `test` with the VM fixtures. A test registered with it gets the configured testTimeout
 * plus VM_BOOT_BUDGET_MS (10 min), so that a VM's boot is not charged to the test's time; a timeout
 * given to the test or its describe block is kept as it is and covers the boot too.
 */
export const test: VmTestAPI = budgeted(
  base.extend<VmFixtures>({
    vmOptions: {},
    fileVmOptions: [{}, { scope: 'file' }],
    workerVmOptions: [{}, { scope: 'worker' }],
    vmctlFileVm: [
      async ({ fileVmOptions }, use) => scopedVm(fileVmOptions, 'file-vm', use),
      { scope: 'file' },
    ],
    vmctlWorkerVm: [
      async ({ workerVmOptions }, use) => scopedVm(workerVmOptions, 'worker-vm', use),
      { scope: 'worker' },
    ],
    vm: async ({ vmOptions, task, skip, signal, onTestFailed }, use) =>
      perTestVm(vmOptions, { task, skip, signal, onTestFailed }, use),
    fileVm: async ({ vmctlFileVm, task, skip }, use) => useScopedVm(vmctlFileVm, { task, skip }, use),
    workerVm: async ({ vmctlWorkerVm, task, skip }, use) => useScopedVm(vmctlWorkerVm, { task, skip }, use),
  }) as VmTestAPI,
)

/**
 * A fixture for the VM called `name`, shared by every test that uses it in every worker of the run
 * (`VM.upShared`). Add `@vmctl/vitest/global-setup` to `globalSetup` so that it lives from its first
 * use to the end of the run; without it, it lives while some worker holds it.
 *
 * @example
 * ```ts
 * const it = test.extend<{ db: VM }>({ db: sharedVm('pg', { ports: [5432] }) })
 * it('answers', async ({ db }) => { ... })
 * ```
 */
export function sharedVm(
  name: string,
  options?: VmOptionsInput,
): (context: TestContext, use: (vm: VM) => Promise<void>) => Promise<void> {
  return async ({ task, skip, signal, onTestFailed }, use) =>
    useSharedVm(name, options, { task, skip, signal, onTestFailed }, use)
}

/**
 * A fixture for the network called `name`, one for every test, file and worker of the run
 * (`VmNetwork.shared`): for its faults (`partition`, `disconnect`, `impair`) and its members. VMs
 * join it by name, in any fixture's options: `{ networks: [{ network: name, hostname: 'db' }] }`.
 * With `@vmctl/vitest/global-setup` it lives from its first use to the end of the run.
 *
 * @example
 * ```ts
 * const it = test.extend<{ net: VmNetwork; db: VM }>({
 *   net: sharedNetwork('cluster'),
 *   db: sharedVm('db', { networks: [{ network: 'cluster', hostname: 'db' }] }),
 * })
 * it('is reached by name', async ({ net, db, vm }) => { ... })
 * ```
 */
export function sharedNetwork(
  name: string,
): (context: TestContext, use: (network: VmNetwork) => Promise<void>) => Promise<void> {
  return async ({ task: _task }, use) => use(await sharedNetworkHandle(name))
}

export { type ExecOptions, type ExecResult, VM, VmNetwork, type VmOptions } from '@vmctl/core'
export { VM_BOOT_BUDGET_MS, type VmOptionsInput, vmDiagnostics, vmMatchers } from '@vmctl/testing'
export { expect }
