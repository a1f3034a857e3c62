import { isMainThread } from 'node:worker_threads'
import type { VM } from '@vmctl/core'
import { VM as CoreVM, VmNetwork } from '@vmctl/core'
import {
  failureDiagnostics,
  finishTestVm,
  isHostUnusable,
  keepRequested,
  keptMessage,
  loadVmOptions,
  printVmWarnings,
  SHORT_SKIP_NOTE,
  skipOrRequire,
  startTestVm,
  type VmOptionsInput,
  vmsUnavailableReason,
} from '@vmctl/testing'
import type { TestContext } from 'vitest'
import { appendToFailure } from './append-to-failure.js'
import { type BootingTest, bootForTest } from './boot-for-test.js'

type Task = TestContext['task']

/** Skips the test with the reason when the host cannot run VMs; fails it under VMCTL_REQUIRE=1. */
export function skipIfNoVms(context: Pick<TestContext, 'skip'>, error?: unknown): void {
  const reason = error !== undefined ? (error as Error).message : vmsUnavailableReason()
  if (!reason) return
  // The run's main process: the parent of a forked worker, or this process for worker threads.
  skipOrRequire(reason, isMainThread ? process.ppid : process.pid)
  context.skip(SHORT_SKIP_NOTE)
}

type FixtureContext = Pick<TestContext, 'skip'> & BootingTest

/**
 * Boots for the test, or skips for a host that cannot run VMs. A VM whose boot outlives the test
 * (its timeout) is released by `release` instead of being handed over (see boot-for-test.ts).
 */
async function bootOrSkip(
  context: FixtureContext,
  fixture: string,
  boot: () => Promise<VM>,
  release: (vm: VM) => Promise<void>,
): Promise<VM> {
  skipIfNoVms(context)
  try {
    return await bootForTest(context, fixture, boot, release)
  } catch (error) {
    if (isHostUnusable(error)) skipIfNoVms(context, error)
    throw error
  }
}

function failed(task: Task): boolean {
  return task.result?.state === 'fail'
}

/** A VM that several tests use (file or worker scope): booted on first use, ended with its scope. */
export interface ScopedVm {
  vm?: VM
  /** Why the host cannot run VMs (skip, or fail under VMCTL_REQUIRE=1). */
  unavailable?: string
  /** The boot failed for another reason: every test that asks for the VM fails with it. */
  bootError?: unknown
  failedTests: number
}

export async function scopedVm(
  options: VmOptionsInput,
  label: string,
  use: (handle: ScopedVm) => Promise<void>,
): Promise<void> {
  const handle: ScopedVm = { failedTests: 0 }
  const reason = vmsUnavailableReason()
  if (reason) handle.unavailable = reason
  else {
    try {
      handle.vm = await startTestVm(options, label)
    } catch (error) {
      if (isHostUnusable(error)) handle.unavailable = (error as Error).message
      else handle.bootError = error
    }
  }
  await use(handle)
  if (!handle.vm) return
  if (handle.failedTests > 0 && keepRequested()) await handle.vm.close()
  else await handle.vm.destroy()
}

/** The test-side view of a scoped VM: skip or the boot error, and diagnostics when the test fails. */
export async function useScopedVm(
  handle: ScopedVm,
  context: Pick<TestContext, 'skip' | 'task'>,
  use: (vm: VM) => Promise<void>,
): Promise<void> {
  if (!handle.vm) {
    if (handle.unavailable !== undefined) skipIfNoVms(context, new Error(handle.unavailable))
    throw handle.bootError
  }
  await use(handle.vm)
  if (!failed(context.task)) return
  handle.failedTests++
  const diagnostics = await failureDiagnostics(handle.vm)
  const keep = keepRequested() ? `\n\n${keptMessage(handle.vm.name)} (it stays after its scope ends)` : ''
  appendToFailure(context.task, `${diagnostics}${keep}`)
}

export async function perTestVm(
  options: VmOptionsInput,
  context: FixtureContext,
  use: (vm: VM) => Promise<void>,
): Promise<void> {
  const vm = await bootOrSkip(
    context,
    'vm',
    () => startTestVm(options, context.task.name),
    (late) => late.destroy(),
  )
  try {
    await use(vm)
  } finally {
    const extra = await finishTestVm(vm, failed(context.task))
    if (extra) appendToFailure(context.task, extra)
  }
}

const shared = new Map<string, Promise<VM>>()

/** This process's handle on a shared VM; its lease lasts as long as the process. */
export function sharedHandle(name: string, options: VmOptionsInput | undefined): Promise<VM> {
  let vm = shared.get(name)
  if (!vm) {
    const { name: _name, persistent: _persistent, ...rest } = loadVmOptions(options)
    vm = CoreVM.upShared(name, rest).then((handle) => {
      printVmWarnings(handle)
      return handle
    })
    vm.catch(() => shared.delete(name))
    shared.set(name, vm)
  }
  return vm
}

const networks = new Map<string, Promise<VmNetwork>>()

/** This process's handle on a shared network (`VmNetwork.shared`); it holds it while the process lives. */
export function sharedNetworkHandle(name: string): Promise<VmNetwork> {
  let network = networks.get(name)
  if (!network) {
    network = VmNetwork.shared(name)
    network.catch(() => networks.delete(name))
    networks.set(name, network)
  }
  return network
}

export async function useSharedVm(
  name: string,
  options: VmOptionsInput | undefined,
  context: FixtureContext,
  use: (vm: VM) => Promise<void>,
): Promise<void> {
  // A shared VM that comes after its test ended stays this process's, for the next test that asks.
  const vm = await bootOrSkip(
    context,
    name,
    () => sharedHandle(name, options),
    async () => {},
  )
  await use(vm)
  if (!failed(context.task)) return
  const diagnostics = await failureDiagnostics(vm)
  appendToFailure(context.task, diagnostics)
}
