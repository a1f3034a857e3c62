import { existsSync, statSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { guestSetupPath } from '@vmctl/agent'
import { InvalidOptionsError, VmctlError } from '../errors.js'
import { chooseAccelerator, hostTscKhz, KVM_PROBE_MS } from '../host/accelerator.js'
import { checkGuestMemory } from '../host/host-memory.js'
import { assertSupportedHost } from '../host/host-platform.js'
import { locateQemu } from '../host/qemu-locator.js'
import { chooseTransport } from '../host/transport-choice.js'
import { stderrProgress } from '../images/image-builder.js'
import { createVmDisk, resolveImage } from '../images/image-disk.js'
import { type ImageInfo, inspectImage } from '../images/image-file.js'
import type { BootForProvisioning } from '../images/provision.js'
import { buildInitramfs } from '../initramfs/initramfs-builder.js'
import { buildRuntimeDisk } from '../initramfs/runtime-disk.js'
import { checkKernelFitsCached } from '../kernels/kernel-fit-cache.js'
import { resolveBusybox, resolveKernel } from '../kernels/resolve-kernel.js'
import { DEFAULT_BOOT_TIMEOUT_TCG_MS, type LaunchSpec } from '../launch-spec.js'
import { type JoinedNetworks, joinNetworks } from '../network/guest-network.js'
import { cacheDir } from '../paths.js'
import { guestPortKey, parseGuestPort } from '../qemu/guest-port.js'
import { mark } from '../supervisor/restore-timeline.js'
import { generateVmName, VmDirectory, validateVmName } from '../supervisor/vm-directory.js'
import { templateCacheMiB } from '../templates/template-store.js'
import { runtimeWriteError } from '../util/disk-full.js'
import { takeReservedVmName } from './spare-supervisor.js'
import { type VmOptions, validateVmOptions } from './vm-options.js'

export const DEFAULT_MEMORY_MIB = 1024
export const DEFAULT_CPUS = 2

/** Image mode's extras: how to boot the VM that makes a provisioning layer, and where its disk goes. */
export interface BootInternals {
  provisioner?: BootForProvisioning
  /** The VM's overlay path, when it must outlive the VM (a provisioning layer in the making). */
  overlay?: string
}

/** A VM ready for its supervisor: its directory made, its launch.json written. */
export interface PreparedLaunch {
  spec: LaunchSpec
  directory: VmDirectory
  /** Added to every command's environment (VmOptions.env). */
  env: Record<string, string>
  /** How long the caller waits for the supervisor to report ready or failed. */
  bootBudgetMs: number
  /** The networks it joined (their ports are open), if any. */
  networks?: JoinedNetworks | undefined
  /**
   * Keep a spare of this VM for the next VM.up() (VmOptions.keepSpare, VMCTL_SPARE_VM): this
   * process's (true), or any process's for up to `idleMs` unused.
   */
  keepSpare: boolean | { idleMs: number }
}

/**
 * Everything that can fail in the caller's process, before any supervisor or QEMU exists: the
 * options, the host (QEMU, memory, kernel, busybox, the guest-setup helper), the initramfs and
 * runtime disk, the mounts, the image (which may boot a whole provisioning VM through
 * `internals.provisioner`), the name; then the VM's directory and its LaunchSpec.
 */
export async function prepareLaunch(
  raw: VmOptions | undefined,
  internals: BootInternals = {},
): Promise<PreparedLaunch> {
  mark('-', 'caller: prepareLaunch')
  assertSupportedHost()
  const options = validateVmOptions(raw)
  checkGuestMemory(options.memoryMiB ?? DEFAULT_MEMORY_MIB)
  // A given image is checked first, before the kernel and initramfs are looked up or built.
  if (typeof options.image === 'string') inspectImage(options.image)
  const env = process.env
  const qemuBinary = locateQemu(env)
  const cache = cacheDir(env)
  const kernel = await resolveKernel({ explicit: options.kernel, env }, cache)
  mark('-', 'caller: kernel resolved')
  const accel = chooseAccelerator(cache, env, options.accel === 'auto' ? undefined : options.accel)
  const transport = chooseTransport(options.transport, kernel, env)
  checkKernelFitsCached(
    kernel,
    { hostRoot: options.image === undefined && options.hostRoot !== false, transport: transport.transport },
    cache,
  )
  mark('-', 'caller: kernel fit checked')
  const busybox = await resolveBusybox(cache, env)
  if (!guestSetupPath()) {
    throw new VmctlError(
      'NOT_BUILT',
      "vmctl's guest-setup helper is not built (it needs a C compiler); the guest cannot mount its root without it. Fix: sudo apt-get install gcc libc6-dev, then pnpm build",
    )
  }
  // VMCTL_TEST_RUNTIME_DISK is for vmctl's own tests only: a runtime disk they broke on purpose
  // (helpers without their execute bit, an agent that cannot start) to prove the boot fails fast.
  const testRuntimeDisk = env.VMCTL_TEST_RUNTIME_DISK
  const [initramfs, runtimeDisk] = await Promise.all([
    buildInitramfs({ kernel, nodeBinary: process.execPath, busybox, cacheDir: cache }),
    testRuntimeDisk ? { path: resolve(testRuntimeDisk) } : buildRuntimeDisk(process.execPath, cache),
  ])
  mark('-', 'caller: initramfs and runtime disk found')
  const mounts = (options.mounts ?? []).map((m) => ({
    host: resolve(m.host),
    guest: m.guest,
    writable: m.writable ?? false,
  }))
  for (const mount of mounts) {
    if (!existsSync(mount.host) || !statSync(mount.host).isDirectory())
      throw new VmctlError(
        'MOUNT_NOT_FOUND',
        `the host directory ${mount.host} (to mount at ${mount.guest}) does not exist or is not a directory. Fix: create it or correct mounts[].host`,
      )
  }
  // Image mode: the built image or provisioned layer is made (cached) before this VM exists.
  let topImage: ImageInfo | undefined
  if (options.image !== undefined) {
    const provisioner = internals.provisioner
    if ((options.provision?.length ?? 0) > 0 && !provisioner)
      throw new VmctlError('PROVISION_UNSUPPORTED', 'provisioning needs VM.up()')
    topImage = await resolveImage(options, cache, provisioner!, stderrProgress)
  } else if (options.provision?.length) {
    throw new InvalidOptionsError(
      'provision needs an image: provisioning steps are cached as a layer on a disk image. Fix: set image (a path or { distribution })',
    )
  }
  const name = options.name ?? takeReservedVmName(keepsSpareVm(options, env) !== false) ?? generateVmName()
  validateVmName(name)
  const directory = new VmDirectory(name, env)
  // Unix socket paths are limited to 107 bytes; fail here, not deep inside QEMU.
  if (Buffer.byteLength(directory.controlSocket) > 107) {
    throw new VmctlError(
      'PATH_TOO_LONG',
      `VM socket paths would be too long (${directory.controlSocket}); set VMCTL_RUNTIME_DIR (or XDG_RUNTIME_DIR) to a shorter directory, or use a shorter VM name`,
    )
  }
  // What the environment can get wrong (VMCTL_TEMPLATE_CACHE_MB=abc) fails before anything exists.
  const templates = templatesEnabled(env)
  const cacheMiB = templateCacheMiB(env)
  const tscKhz = hostTscKhz()
  directory.create()
  let image: LaunchSpec['image']
  let networks: JoinedNetworks | undefined
  try {
    if (topImage) image = await createVmDisk(topImage, directory.path, cache, internals.overlay)
    // Before QEMU starts: its NICs connect to the ports the switches open here.
    if (options.networks?.length) networks = await joinNetworks(name, options.networks)
  } catch (error) {
    directory.remove()
    throw error
  }

  const spec: LaunchSpec = {
    name,
    createdAt: new Date().toISOString(),
    creatorPid: process.pid,
    persistent: options.persistent ?? false,
    qemuBinary,
    kernel,
    initramfs: initramfs.path,
    runtimeDisk: runtimeDisk.path,
    memoryMiB: options.memoryMiB ?? DEFAULT_MEMORY_MIB,
    cpus: options.cpus ?? DEFAULT_CPUS,
    hostRoot: image || options.hostRoot === false ? undefined : (options.hostRoot ?? '/'),
    image,
    mounts,
    guestPorts: [...new Set((options.ports ?? []).map((port) => guestPortKey(parseGuestPort(port)!)))],
    networkSockets: networks?.sockets,
    networkAddresses: networks?.addresses,
    kernelArgs: options.kernelArgs ?? [],
    qemuArgs: options.qemuArgs ?? [],
    accel,
    transport,
    tscKhz,
    bootTimeoutMs: options.bootTimeoutMs,
    cacheDir: cache,
    templates,
    templateCacheMiB: cacheMiB,
  }
  try {
    writeFileSync(directory.launchFile, JSON.stringify(spec, null, 2))
  } catch (error) {
    networks?.leave()
    directory.remove()
    throw runtimeWriteError(error, directory.path, directory.launchFile)
  }
  const bootBudgetMs =
    (options.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_TCG_MS) + (accel.probe ? KVM_PROBE_MS : 0) + 30_000
  const keepSpare = keepsSpareVm(options, env)
  return { spec, directory, env: options.env ?? {}, bootBudgetMs, networks, keepSpare }
}

function templatesEnabled(env: NodeJS.ProcessEnv): boolean {
  const value = env.VMCTL_TEMPLATES
  return !(value === '0' || value === 'false' || value === 'off')
}

/** Whether this VM keeps a spare VM (VmOptions.keepSpare, VMCTL_SPARE_VM). */
function keepsSpareVm(options: VmOptions, env: NodeJS.ProcessEnv): boolean | { idleMs: number } {
  const spares = env.VMCTL_SPARE_VM
  if (spares === '0') return false
  if (typeof options.keepSpare === 'object') return options.keepSpare
  return spares === '1' || options.keepSpare === true
}
