import { spawn } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type AgentClient, guestSetupPath } from '@vmctl/agent'
import { BootFailedError, BootTimeoutError, InvalidOptionsError, VmctlError } from '../errors.js'
import { chooseAccelerator, hostTscKhz, KVM_PROBE_MS } from '../host/accelerator.js'
import { checkGuestMemory } from '../host/host-memory.js'
import { locateQemu } from '../host/qemu-locator.js'
import { chooseTransport } from '../host/transport-choice.js'
import { stderrProgress } from '../images/image-builder.js'
import { createVmDisk, resolveImage } from '../images/image-disk.js'
import { type ImageInfo, inspectImage } from '../images/image-file.js'
import type { BootForProvisioning } from '../images/provision.js'
import { buildInitramfs } from '../initramfs/initramfs-builder.js'
import { buildRuntimeDisk } from '../initramfs/runtime-disk.js'
import { resolveBusybox, resolveKernel } from '../kernels/resolve-kernel.js'
import { DEFAULT_BOOT_TIMEOUT_TCG_MS, type LaunchSpec } from '../launch-spec.js'
import { logger } from '../log.js'
import { type GuestShell, type JoinedNetworks, joinNetworks } from '../network/guest-network.js'
import { cacheDir } from '../paths.js'
import type { ControlEvent, ErrorPayload, VmStatus } from '../supervisor/control-protocol.js'
import { SupervisorClient } from '../supervisor/supervisor-client.js'
import { generateVmName, isAlive, VmDirectory, validateVmName } from '../supervisor/vm-directory.js'
import { templateCacheMiB } from '../templates/template-store.js'
import { agentClient } from './agent-client.js'
import { type VmOptions, validateVmOptions } from './vm-options.js'

const log = logger('boot')

export const DEFAULT_MEMORY_MIB = 1024
export const DEFAULT_CPUS = 2

/** Image mode's extras: how to boot the VM that makes a provisioning layer, and where its disk goes. */
export interface BootInternals {
  provisioner?: BootForProvisioning
  /** The VM's overlay path, when it must outlive the VM (a provisioning layer in the making). */
  overlay?: string
}

type MakeVm<T> = (
  status: VmStatus,
  control: SupervisorClient,
  directory: VmDirectory,
  env: Record<string, string>,
  agent: AgentClient,
) => T

/**
 * Prepares everything that can fail in the caller's process (QEMU, kernel, options, initramfs), then
 * starts the VM's supervisor and waits for it to report the agent healthy or the boot failed.
 */
export async function bootVm<T>(
  raw: VmOptions | undefined,
  make: MakeVm<T>,
  internals: BootInternals = {},
): Promise<T> {
  const options = validateVmOptions(raw)
  checkGuestMemory(options.memoryMiB ?? DEFAULT_MEMORY_MIB)
  // A given image is checked first, before the kernel and initramfs are looked up or built.
  if (typeof options.image === 'string') inspectImage(options.image)
  const env = process.env
  const qemuBinary = locateQemu(env)
  const cache = cacheDir(env)
  const kernel = await resolveKernel({ explicit: options.kernel, env }, cache)
  const accel = chooseAccelerator(cache, env, options.accel === 'auto' ? undefined : options.accel)
  const transport = chooseTransport(options.transport, kernel, env)
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
  const name = options.name ?? generateVmName()
  validateVmName(name)
  const directory = new VmDirectory(name, env)
  // Unix socket paths are limited to 107 bytes; fail here, not deep inside QEMU.
  if (Buffer.byteLength(directory.controlSocket) > 107) {
    throw new VmctlError(
      'PATH_TOO_LONG',
      `VM socket paths would be too long (${directory.controlSocket}); set VMCTL_RUNTIME_DIR (or XDG_RUNTIME_DIR) to a shorter directory, or use a shorter VM name`,
    )
  }
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
    guestPorts: [...new Set(options.ports ?? [])],
    networkSockets: networks?.sockets,
    kernelArgs: options.kernelArgs ?? [],
    qemuArgs: options.qemuArgs ?? [],
    accel,
    transport,
    tscKhz: hostTscKhz(),
    bootTimeoutMs: options.bootTimeoutMs,
    cacheDir: cache,
    templates: templatesEnabled(env),
    templateCacheMiB: templateCacheMiB(env),
  }
  writeFileSync(directory.launchFile, JSON.stringify(spec, null, 2))

  const logFd = openSync(directory.supervisorLog, 'a', 0o600)
  const supervisor = spawn(process.execPath, [supervisorMainPath(), directory.path], {
    detached: true,
    stdio: ['ignore', logFd, logFd],
    // Not the caller's Node settings: NODE_OPTIONS may hold --inspect or loaders meant for the test
    // process, and NODE_EXTRA_CA_CERTS (set on many CI hosts) costs ~0.15 s of start-up parsing
    // certificates that a supervisor, which makes no TLS connection, never uses.
    env: { ...env, VMCTL_RUNTIME_DIR: undefined, NODE_OPTIONS: undefined, NODE_EXTRA_CA_CERTS: undefined },
  })
  closeSync(logFd)
  supervisor.on('error', () => {}) // a spawn failure shows as a supervisor that never answers
  supervisor.unref()
  log('%s: supervisor pid %d', name, supervisor.pid)

  let control: SupervisorClient | undefined
  try {
    control = await connectControl(directory, supervisor.pid)
    const bootBudget =
      (options.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_TCG_MS) + (accel.probe ? KVM_PROBE_MS : 0) + 30_000
    const outcome = await waitForBoot(control, bootBudget)
    if (outcome.event === 'ready') {
      control.unref()
      const vm = make(outcome.status, control, directory, options.env ?? {}, agentClient(directory))
      await networks?.configure(vm as GuestShell)
      return vm
    }
    throw bootError(name, outcome.event === 'failed' ? outcome.error : undefined, outcome)
  } catch (error) {
    networks?.leave()
    control?.close()
    try {
      if (supervisor.pid && isAlive(supervisor.pid)) process.kill(supervisor.pid, 'SIGTERM')
    } catch {}
    await waitUntil(() => !existsSync(directory.path) || !isAlive(supervisor.pid), 5_000)
    if (!isAlive(supervisor.pid)) directory.remove()
    throw error
  }
}

function templatesEnabled(env: NodeJS.ProcessEnv): boolean {
  const value = env.VMCTL_TEMPLATES
  return !(value === '0' || value === 'false' || value === 'off')
}

function bootError(
  name: string,
  failure: ErrorPayload | undefined,
  outcome: ControlEvent | { event: 'timeout' },
): Error {
  if (failure?.code === 'BOOT_TIMEOUT')
    return new BootTimeoutError(name, failure.timeoutMs, failure.accel, failure.consoleTail, failure.message)
  if (failure) return new BootFailedError(name, failure.message, failure.consoleTail)
  if (outcome.event === 'exited') return new BootFailedError(name, outcome.reason, outcome.consoleTail)
  return new BootFailedError(name, 'its supervisor stopped answering', '')
}

async function connectControl(directory: VmDirectory, pid: number | undefined): Promise<SupervisorClient> {
  // A node process's start: well under a second on a quiet host, but a minute is not unheard of
  // inside a TCG guest (vmctl in a VM) or on a host running many VMs.
  const deadline = Date.now() + 60_000
  for (;;) {
    try {
      return await SupervisorClient.connect(directory.controlSocket)
    } catch {
      if (!isAlive(pid)) {
        throw new VmctlError(
          'SUPERVISOR_FAILED',
          `the VM supervisor exited during start-up:\n${tail(directory.supervisorLog)}`,
        )
      }
      if (Date.now() > deadline)
        throw new VmctlError(
          'SUPERVISOR_FAILED',
          `the VM supervisor did not start:\n${tail(directory.supervisorLog)}`,
        )
      await new Promise((r) => setTimeout(r, 15))
    }
  }
}

function waitForBoot(
  control: SupervisorClient,
  budgetMs: number,
): Promise<ControlEvent | { event: 'timeout' }> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ event: 'timeout' }), budgetMs)
    control.on('event', (event) => {
      clearTimeout(timer)
      resolve(event)
    })
    control.on('close', () => {
      clearTimeout(timer)
      resolve({ event: 'exited', reason: 'the VM supervisor exited during boot', consoleTail: '' })
    })
    void control.request({ op: 'attach', lease: true })
  })
}

async function waitUntil(predicate: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-15).join('\n')
  } catch {
    return '(no supervisor log)'
  }
}

/**
 * The supervisor entry: the one-file bundle that `pnpm build` makes (it starts in ~0.15 s against
 * ~0.35 s for the separate modules), else the compiled module; in dist/ even when this module runs
 * from src/ under a TS test runner.
 */
function supervisorMainPath(): string {
  const dist = fileURLToPath(new URL('..', import.meta.url)).replace(/\/src\/$/, '/dist/')
  for (const entry of ['supervisor.cjs', 'supervisor/supervisor-main.js']) {
    if (existsSync(join(dist, entry))) return join(dist, entry)
  }
  throw new VmctlError('NOT_BUILT', `vmctl's supervisor is not built (${dist} has none). Fix: pnpm build`)
}
