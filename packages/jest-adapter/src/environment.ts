/**
 * A jest environment that boots one VM per test file and puts it in the global `vm`.
 *
 * ```js
 * // jest.config.js
 * export default { testEnvironment: '@vmctl/jest/environment' }
 * // per file:
 * /** @jest-environment-options {"vm": {"ports": [8080]}} *\/
 * ```
 */
import type { VM } from '@vmctl/core'
import {
  bootBudgetMs,
  failureDiagnostics,
  isHostUnusable,
  keepRequested,
  keptMessage,
  skipOrRequire,
  startTestVm,
  type VmOptionsInput,
  vmsUnavailableReason,
} from '@vmctl/testing'
import { TestEnvironment as NodeEnvironment } from 'jest-environment-node'
import { addToTimeout, appendToErrors, type CircusTest } from './circus-state.js'
import { jestRunPid } from './run-pid.js'

type CircusEvent = { name: string; test?: CircusTest }
type CircusState = Parameters<typeof addToTimeout>[1]
type JestEnvironmentConfig = ConstructorParameters<typeof NodeEnvironment>[0]
type EnvironmentContext = ConstructorParameters<typeof NodeEnvironment>[1]

export default class VmEnvironment extends NodeEnvironment {
  private readonly options: VmOptionsInput | undefined
  private vm: VM | undefined
  private unavailable: string | undefined
  private failures = 0

  constructor(config: JestEnvironmentConfig, context: EnvironmentContext) {
    super(config, context)
    this.options = (config.projectConfig.testEnvironmentOptions as { vm?: VmOptionsInput }).vm
  }

  override async setup(): Promise<void> {
    await super.setup()
    const reason = vmsUnavailableReason()
    if (reason) return this.cannotRun(reason)
    try {
      this.vm = await startTestVm(this.options, 'jest-file')
    } catch (error) {
      if (!isHostUnusable(error)) throw error
      return this.cannotRun((error as Error).message)
    }
    this.global.vm = this.vm
  }

  private cannotRun(reason: string): void {
    skipOrRequire(reason, jestRunPid())
    this.unavailable = reason
  }

  async handleTestEvent(event: CircusEvent, state: CircusState): Promise<void> {
    if (event.name === 'test_start' && this.unavailable && event.test) event.test.mode = 'skip'
    // A test in a VM's file gets the VM budget on top of testTimeout (guest commands are slow
    // under TCG), unless it has a timeout of its own.
    if (event.name === 'test_start' && this.vm) addToTimeout(event.test, state, bootBudgetMs())
    if (event.name !== 'test_done' || !event.test || event.test.errors.length === 0 || !this.vm) return
    this.failures++
    const diagnostics = await failureDiagnostics(this.vm)
    const keep = keepRequested() ? `\n\n${keptMessage(this.vm.name)} (it stays after this file)` : ''
    appendToErrors(event.test, `${diagnostics}${keep}`)
  }

  override async teardown(): Promise<void> {
    if (this.vm) {
      if (this.failures > 0 && keepRequested()) await this.vm.close()
      else await this.vm.destroy()
    }
    await super.teardown()
  }
}
