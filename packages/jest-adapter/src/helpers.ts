import { VM, VmNetwork, type VmOptions } from '@vmctl/core'
import {
  bootBudgetMs,
  failureDiagnostics,
  finishTestVm,
  isHostUnusable,
  loadVmOptions,
  printVmWarnings,
  skipOrRequire,
  startTestVm,
  type VmOptionsInput,
  vmMatchers,
  vmsUnavailableReason,
} from '@vmctl/testing'
import {
  addToTimeout,
  appendToErrors,
  type CircusDescribeBlock,
  circusState,
  skipAll,
} from './circus-state.js'
import { lateBootMessage } from './late-boot.js'
import { jestRunPid } from './run-pid.js'

/** The jest globals of the test file the helpers are used in. */
export interface JestGlobals {
  beforeAll(fn: () => unknown, timeout?: number): void
  afterAll(fn: () => unknown, timeout?: number): void
  beforeEach(fn: () => unknown, timeout?: number): void
  afterEach(fn: () => unknown, timeout?: number): void
  expect?: { extend(matchers: object): void }
}

// Hooks that boot get vmctl's whole boot budget: a boot that hangs ends with vmctl's own error. The
// tests that use the VM get it on top of testTimeout too (unless they have a timeout of their own):
// under TCG everything in the guest is 5-10x slower, and a test's first commands run in a guest that
// has just booted. VMCTL_BOOT_BUDGET_MS, read when the helpers register their hooks, changes it.
const shared = new Map<string, Promise<VM>>()
const sharedNetworks = new Map<string, Promise<VmNetwork>>()

/** This process's one handle on a shared VM or network of that name; a failed one is tried anew. */
function onceByName<T>(handles: Map<string, Promise<T>>, name: string, make: () => Promise<T>): Promise<T> {
  let handle = handles.get(name)
  if (!handle) {
    handle = make()
    handle.catch(() => handles.delete(name))
    handles.set(name, handle)
  }
  return handle
}

/**
 * A VM handle that stands for whichever VM is current: the helpers return it when they are called
 * (while jest collects tests), and tests use it once the hooks have set the VM.
 */
function standIn<T extends object>(current: () => T | undefined, what: string): T {
  return new Proxy({} as T, {
    get(_target, property) {
      const vm = current()
      if (!vm) {
        if (property === 'then') return undefined // not a thenable
        throw new Error(`${what} is only there inside a test (it is set by beforeEach/beforeAll hooks)`)
      }
      const value = Reflect.get(vm, property, vm)
      return typeof value === 'function' ? value.bind(vm) : value
    },
  })
}

/** Bound to one test file's jest globals by the entry shims. */
export function bindToJest(globals: JestGlobals, sandbox: object) {
  const failedTest = () => {
    const test = circusState(sandbox)?.currentlyRunningTest
    return test && test.errors.length > 0 ? test : undefined
  }

  /** Skips the block's tests (or fails them under VMCTL_REQUIRE=1) when VMs cannot run here. */
  function guard(): { block: CircusDescribeBlock | undefined } {
    const block = circusState(sandbox)?.currentDescribeBlock
    return { block }
  }

  function cannotRun(reason: string, block: CircusDescribeBlock | undefined): void {
    skipOrRequire(reason, jestRunPid())
    if (block) skipAll(block)
  }

  return {
    /**
     * A fresh VM for each test of the enclosing describe block (or file), destroyed after it; kept
     * under VMCTL_KEEP=1 when the test fails.
     */
    useVm(options?: VmOptionsInput): VM {
      const budget = bootBudgetMs()
      let vm: VM | undefined
      /** The boot of the current test; a boot that ends after its test (the hook timed out) is not it. */
      let booting: Promise<VM> | undefined
      let bootStarted = 0
      let unusable = false
      const { block } = guard()
      globals.beforeAll(() => {
        const reason = vmsUnavailableReason()
        if (reason) {
          unusable = true
          cannotRun(reason, block)
        }
      })
      globals.beforeEach(async () => {
        if (unusable) return
        const state = circusState(sandbox)
        addToTimeout(state?.currentlyRunningTest, state, budget)
        const name = state?.currentlyRunningTest?.name
        const boot = startTestVm(options, name)
        booting = boot
        bootStarted = performance.now()
        let started: VM
        try {
          started = await boot
        } catch (error) {
          if (isHostUnusable(error)) cannotRun((error as Error).message, undefined)
          throw error
        }
        // jest gave up on this hook (its timeout) and has moved on: this VM has no test to serve.
        if (booting !== boot) return started.destroy()
        booting = undefined
        vm = started
      }, budget)
      globals.afterEach(async () => {
        if (booting) {
          // The boot outlived its hook: the hook ends the VM once it is there (see above).
          booting = undefined
          const test = failedTest()
          if (test) appendToErrors(test, lateBootMessage(budget, performance.now() - bootStarted))
        }
        if (!vm) return
        const test = failedTest()
        const current = vm
        vm = undefined
        const extra = await finishTestVm(current, !!test)
        if (test && extra) appendToErrors(test, extra)
      }, 60_000)
      return standIn(() => vm, 'the VM of useVm()')
    },

    /**
     * The VM called `name`, shared by every test file and worker of the run (`VM.upShared`); add
     * `@vmctl/jest/global-setup` and `@vmctl/jest/global-teardown` to keep it until the run ends.
     */
    useSharedVm(name: string, options?: VmOptionsInput): VM {
      const budget = bootBudgetMs()
      let vm: VM | undefined
      const { block } = guard()
      globals.beforeAll(async () => {
        const reason = vmsUnavailableReason()
        if (reason) return cannotRun(reason, block)
        vm = await onceByName(shared, name, () => {
          const { name: _name, persistent: _persistent, ...rest } = loadVmOptions(options) as VmOptions
          return VM.upShared(name, rest).then((started) => {
            printVmWarnings(started)
            return started
          })
        })
      }, budget)
      globals.beforeEach(() => {
        const state = circusState(sandbox)
        if (vm) addToTimeout(state?.currentlyRunningTest, state, budget)
      })
      globals.afterEach(async () => {
        const test = failedTest()
        if (!vm || !test) return
        appendToErrors(test, await failureDiagnostics(vm))
      }, 60_000)
      return standIn(() => vm, `the shared VM ${name}`)
    },

    /**
     * The network called `name`, shared by every test file and worker of the run
     * (`VmNetwork.shared`): VMs join it with `networks: [name]` in their options. The run's keeper
     * (`@vmctl/jest/global-setup` and `global-teardown`) ends it after its last user.
     */
    useSharedNetwork(name: string): VmNetwork {
      let network: VmNetwork | undefined
      const { block } = guard()
      globals.beforeAll(async () => {
        const reason = vmsUnavailableReason()
        if (reason) return cannotRun(reason, block)
        network = await onceByName(sharedNetworks, name, () => VmNetwork.shared(name))
      }, bootBudgetMs())
      return standIn(() => network, `the shared network ${name}`)
    },

    /** Adds the VM matchers to this file's expect (done by the entry shims already). */
    installMatchers(): void {
      globals.expect?.extend(vmMatchers)
    },
  }
}

export { vmMatchers }
