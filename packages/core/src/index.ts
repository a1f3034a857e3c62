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

export { closestName } from './closest-name.js'
export {
  CONFIG_FILE_NAME,
  ConfigError,
  findConfig,
  type LoadedConfig,
  loadConfig,
} from './config/config-file.js'
export {
  isVmtestConfig,
  loadVmtestConfig,
  memoryMiB,
  VMTEST_MOUNT,
  VmtestConfigError,
  type VmtestTarget,
} from './config/vmtest-config.js'
export { coreVersion } from './core-version.js'
export type { AttachDiskOptions, DiskAttachment } from './disks/disk-attach.js'
export { DiskError, type DiskErrorCode } from './disks/disk-error.js'
export { type ListedDisk, listDisks } from './disks/disk-list.js'
export { disksDir } from './disks/disks-dir.js'
export { type DiskCreateOptions, type DiskFormat, VmDisk } from './disks/vm-disk.js'
export {
  AgentError,
  BootFailedError,
  BootTimeoutError,
  CommandWaitTimeoutError,
  FileTooLargeError,
  HostDiskFullError,
  InvalidOptionsError,
  KernelFetchError,
  KernelNotFoundError,
  OutputWaitTimeoutError,
  PortWaitTimeoutError,
  QemuNotFoundError,
  UnsupportedHostError,
  VmctlError,
  VmExitedError,
  VmNotFoundError,
  VmStoppedError,
} from './errors.js'
export { type AcceleratorChoice, chooseAccelerator } from './host/accelerator.js'
export { ciCacheKey } from './host/ci-cache-key.js'
export { assertSupportedHost } from './host/host-platform.js'
export { locateKernel, type ResolvedKernel } from './host/kernel-locator.js'
export { locateQemu } from './host/qemu-locator.js'
export { type AgentTransport, chooseTransport, type TransportChoice } from './host/transport-choice.js'
export { type BuiltImage, buildImage, imageKey } from './images/image-builder.js'
export { ImageError, inspectImage } from './images/image-file.js'
export { type CachedImage, listCachedImages, removeCachedImage } from './images/image-store.js'
export { ProvisionError } from './images/provision.js'
export type { KernelFetchPhases } from './kernels/default-kernel.js'
export { isKernelName, type KernelName, parseKernelName } from './kernels/kernel-name.js'
export type { CachedKernel } from './kernels/kernel-package.js'
export { type KernelEntry, listCachedKernels, pruneKernels } from './kernels/kernel-store.js'
export {
  type DefaultKernel,
  fetchDefaultKernel,
  fetchNamedKernel,
  hostBusybox,
  installedDefaultKernel,
  prepareBusybox,
} from './kernels/resolve-kernel.js'
export type { NetworkAttachment } from './network/guest-network.js'
export { listNetworks, type MemberInfo, type NetworkState } from './network/network-directory.js'
export type { Impairment, PortState } from './network/switch.js'
export {
  type MemberRef,
  type NetworkCapture,
  VmNetwork,
  type VmNetworkOptions,
} from './network/vm-network.js'
export { type GcAction, gcHost } from './observer/host-gc.js'
export {
  type Finding,
  type FindingKind,
  type HostObservation,
  type ObservedVm,
  observeHost,
} from './observer/host-observer.js'
export { cacheDir, ensureRuntimeDir, runtimeDir } from './paths.js'
export { type GuestPortSpec, type PortProtocol, parseGuestPort } from './qemu/guest-port.js'
export type { VmState, VmStatus } from './supervisor/control-protocol.js'
export type { AttachedDisk } from './supervisor/disk-hotplug.js'
export { type ListedVm, listVms } from './supervisor/vm-directory.js'
export {
  type ListedTemplate,
  listTemplates,
  removeTemplate,
  templateCacheMiB,
} from './templates/template-store.js'
export { firstLine, firstLineOf } from './util/first-line.js'
export { destroyVm } from './vm/destroy-vm.js'
export { offerEarlySupervisor, releaseEarlySupervisor } from './vm/early-supervisor.js'
export { ExecError, type ExecResult } from './vm/exec-result.js'
export { formatListeningPort, type ListeningPort } from './vm/listening-ports.js'
export type { ForwardPortOptions } from './vm/port-forward.js'
export type { SharedVmOptions } from './vm/shared-vm.js'
export { SHARED_KEEPER_ENV, type SharedVmKeeper, startSharedVmKeeper } from './vm/shared-vm-keeper.js'
export { VM } from './vm/vm.js'
export type { ImageBuildOptions, MountOptions, VmOptions } from './vm/vm-options.js'
export type { StopResult } from './vm/vm-power.js'
export type {
  ExecOptions,
  ProcessOptions,
  SpawnOptions,
  TerminalSize,
  VmProcess,
  WaitForOutputOptions,
  WaitForPortOptions,
} from './vm/vm-types.js'
export type { WaitForCommandOptions } from './vm/wait-for-command.js'
