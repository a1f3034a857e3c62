/**
 * @vmctl/testing: what the vitest and jest adapters share, usable from any test runner: matchers
 * for exec results and VMs, skip-or-require when the host cannot run VMs, VMCTL_KEEP, and the guest
 * console and agent log tails for failure messages.
 *
 * @example
 * ```ts
 * import { vmMatchers } from '@vmctl/testing'
 * expect.extend(vmMatchers)
 * expect(await vm.exec('true')).toSucceed()
 * await expect(vm).toHaveListeningPort(8080)
 * ```
 */
export { type DiagnosticsOptions, failureDiagnostics, vmDiagnostics } from './diagnostics.js'
export {
  isHostUnusable,
  REQUIRE_ENV,
  VmsUnavailableError,
  vmsRequired,
  vmsUnavailableReason,
} from './host-check.js'
export {
  type MatcherResult,
  toFailWith,
  toHaveFile,
  toHaveIpAddress,
  toHaveListeningPort,
  toHaveProcess,
  toHaveStdout,
  toSucceed,
  type VmMatchers,
  vmMatchers,
} from './matchers.js'
export { noteSkipOncePerRun, oneLine, SHORT_SKIP_NOTE, skipLine, skipOrRequire } from './skip-notice.js'
export {
  BOOT_BUDGET_ENV,
  bootBudgetMs,
  finishTestVm,
  KEEP_ENV,
  keepRequested,
  keptMessage,
  loadVmOptions,
  startTestVm,
  testVmName,
  VM_BOOT_BUDGET_MS,
  type VmOptionsInput,
} from './test-vm.js'
export { printVmWarnings } from './vm-warnings.js'
