/**
 * @vmctl/core: throwaway QEMU virtual machines for tests.
 *
 * @example
 * ```ts
 * import { VM } from '@vmctl/core'
 * await using vm = await VM.up()
 * const { stdout } = await vm.exec('uname -r')
 * ```
 */
export { VM, type ExecOptions } from './vm/vm.js'
export type { VmOptions } from './vm/vm-options.js'
export { ExecError, type ExecResult } from './vm/exec-result.js'
export {
  AgentError,
  BootFailedError,
  BootTimeoutError,
  InvalidOptionsError,
  KernelNotFoundError,
  QemuNotFoundError,
  VmctlError,
  VmExitedError,
  VmNotFoundError,
} from './errors.js'
export { locateKernel, type ResolvedKernel } from './host/kernel-locator.js'
export { chooseAccelerator, type AcceleratorChoice } from './host/accelerator.js'
export { listVms, type ListedVm } from './supervisor/vm-directory.js'
export type { VmStatus, VmState } from './supervisor/control-protocol.js'
export { cacheDir, runtimeDir } from './paths.js'
