import { type ChildProcess, spawn } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  constants as fsConstants,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import net from 'node:net'
import { basename, join } from 'node:path'
import { Duplex } from 'node:stream'
import { credentials, Metadata } from '@grpc/grpc-js'
import { AGENT_VSOCK_PORT, HealthClient, MuxSession, ServingStatus } from '@vmctl/agent'
import { type Accelerator, KVM_PROBE_MS, recordVerdict } from '../host/accelerator.js'
import { lockIn, tryLock } from '../host/cross-process-lock.js'
import { removeStaleBuilds } from '../host/stale-builds.js'
import { DEFAULT_BOOT_TIMEOUT_KVM_MS, DEFAULT_BOOT_TIMEOUT_TCG_MS, type LaunchSpec } from '../launch-spec.js'
import { logger } from '../log.js'
import { connectChardev } from '../qemu/chardev-socket.js'
import { loadDeviceState, saveDeviceState } from '../qemu/migration.js'
import { AGENT_PORT_DEVICE_ID, type QemuCommandPlan, qemuArguments } from '../qemu/qemu-command.js'
import { qemuPlanFor } from '../qemu/qemu-plan.js'
import { parseUsernetForwards, QmpClient } from '../qemu/qmp-client.js'
import { rewriteSparse } from '../templates/sparse-ram.js'
import { templateKey, templateSummary } from '../templates/template-key.js'
import {
  checkTemplate,
  DEFAULT_TEMPLATE_CACHE_MB,
  evictTemplates,
  publishTemplate,
  ramDenserThanSaved,
  removeTemplate,
  sealTemplate,
  type TemplateFiles,
  templateFiles,
  templatesDir,
  touchTemplate,
} from '../templates/template-store.js'
import { withBootFailureCause } from './boot-failure-cause.js'
import { ConsoleLog } from './console-log.js'
import {
  type ControlEvent,
  type ControlRequest,
  type ErrorPayload,
  encodeMessage,
  LineDecoder,
  type VmState,
  type VmStatus,
} from './control-protocol.js'
import { GuestSetupPort, RootMountError } from './guest-setup-port.js'
import { isAlive, type VmDirectory } from './vm-directory.js'

/** A VM nobody leased within this time was orphaned by a creator that died while starting it. */
const FIRST_LEASE_GRACE_MS = 20_000
/** After QMP `quit`, how long QEMU gets before SIGKILL. */
const QUIT_GRACE_MS = 2_000
const SETPRIV = '/usr/bin/setpriv'
/** Health service the agent reports SERVING as soon as it answers, before the root is mounted. */
const AGENT_HEALTH_SERVICE = 'vmctl.agent'
/**
 * A template restore answers in about a second under TCG; one that has not within this bound is
 * broken (dropped and rebuilt), not slow. Generous for 8 parallel restores on 2 cores.
 */
const RESTORE_TIMEOUT_MS = 60_000
/** How long a guest agent gets to acknowledge a park before a snapshot is saved regardless. */
const PARK_TIMEOUT_MS = 5_000
/** guest-setup's report of a root it could not mount (packages/agent/native/mount-root.c). */
const ROOT_FAILURE_LINE = /vmctl-init: root: ([^\r\n]*)\r?\n/
/** The init's report of a boot that cannot succeed, with its cause and fix (init-script.ts fatal). */
const GUEST_FATAL_LINE = /vmctl-init: fatal: ([^\r\n]*)\r?\n/

interface ControlClient {
  socket: net.Socket
  lease: boolean
  attached: boolean
}

class BootFailure extends Error {
  readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.code = code
  }
}

/**
 * Owns one VM: spawns QEMU as its child, holds the agent channel, serves clients, and tears
 * everything down when the VM's owners are gone. One supervisor process per VM, detached from its
 * creator, so the same mechanism serves `vmctl up` (a VM outliving the CLI), VMs shared between
 * test workers (several leases), and cleanup after a crashed test runner (the lease socket closes
 * when the kernel reaps the runner, whatever killed it).
 *
 * QEMU runs under `setpriv --pdeathsig KILL`: if this supervisor is SIGKILLed, the kernel kills
 * QEMU too, and the next vmctl command removes the leftover directory (vm-directory.ts).
 */
export class Supervisor {
  private readonly dir: VmDirectory
  private readonly spec: LaunchSpec
  private readonly log
  private state: VmState = 'booting'
  private accel: Accelerator
  private accelReason: string
  private qemu: ChildProcess | undefined
  private qemuStderr = ''
  private readonly console: ConsoleLog
  private readonly mux = new MuxSession('host')
  private qmp: QmpClient | undefined
  private ports: Record<string, number> = {}
  private readonly clients = new Set<ControlClient>()
  private leases = 0
  private everLeased = false
  private failure: ErrorPayload | undefined
  private exitEvent: ControlEvent | undefined
  private bootMs: number | undefined
  private stopping: Promise<void> | undefined
  private agentServer: net.Server | undefined
  private rawServer: net.Server | undefined
  private controlServer: net.Server | undefined
  private qemuExited: Promise<void> = Promise.resolve()
  private lastExit: { code: number | null; signal: NodeJS.Signals | null } = { code: null, signal: null }
  private guestFailure: ((message: string) => void) | undefined
  private vsockCid: number | undefined
  private readonly warnings: string[] = []
  /** A template restore reached the agent: what fails after that is not the template's fault. */
  private restoredAgent = false
  private restoring = false
  /** KVM passed its probe (the console spoke) but this boot has not proven it yet. */
  private kvmOnProbation = false
  private template: VmStatus['template']
  private health: HealthClient | undefined
  private qemuVariant: Pick<QemuCommandPlan, 'memoryFile' | 'incoming' | 'deferRoot'> = {}
  private agentPortSocket: net.Socket | undefined
  /** Snapshot and restore run one at a time. */
  private snapshotQueue: Promise<unknown> = Promise.resolve()
  private vsockBridge: ChildProcess | undefined
  /** The guest's setup port, connecting from QEMU's start (see GuestSetupPort). */
  private setupPort: Promise<GuestSetupPort | undefined> = Promise.resolve(undefined)
  /** When the phases of a template restore ended (performance.now()), for the log. */
  private restoreTimes:
    | { started: number; loaded: number; refreshed: number; synced: () => number }
    | undefined

  constructor(dir: VmDirectory, spec: LaunchSpec) {
    this.dir = dir
    this.spec = spec
    this.log = logger('supervisor', spec.name)
    this.accel = spec.accel.accel
    this.accelReason = spec.accel.reason
    this.console = new ConsoleLog(dir.consoleLog)
    this.mux.on('reset', (reason) => this.log('agent session reset: %s', reason))
  }

  async run(): Promise<void> {
    this.log('supervisor running %d ms after its process started', Math.round(performance.now()))
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(signal, () => void this.shutdown(`supervisor received ${signal}`))
    }
    this.writeStatus()
    this.controlServer = await listen(this.dir.controlSocket, false, (socket) => this.onControlClient(socket))
    // Half-open for byte channels: a client that ends its side (a raw sink) still gets the answer.
    this.agentServer = await listen(this.dir.agentSocket, true, (socket) => this.onAgentClient(socket))
    this.rawServer = await listen(this.dir.rawSocket, true, (socket) => this.onRawClient(socket))
    if (!this.spec.persistent) this.watchCreator()
    try {
      await this.boot()
    } catch (error) {
      const failure =
        error instanceof BootFailure ? error : new BootFailure('BOOT_FAILED', (error as Error).message)
      const consoleTail = this.console.lastLines()
      this.failure = {
        code: failure.code,
        message: withBootFailureCause(failure.message, this.dir.consoleLog, consoleTail),
        consoleTail,
        accel: this.accel,
        timeoutMs: this.bootTimeoutMs(),
      }
      this.log('boot failed: %s', failure.message)
      // KVM that fails a real boot is not usable, whatever a probe said: later boots use TCG.
      const kvmError = this.accel === 'kvm' ? this.kvmError() : undefined
      if (kvmError)
        recordVerdict(this.spec.cacheDir, false, `KVM at /dev/kvm failed a boot (${kvmError.trim()})`)
      this.broadcast({ event: 'failed', error: this.failure })
      await this.shutdown(`boot failed: ${failure.message}`)
    }
  }

  /**
   * Until the first lease, the VM belongs to the process that created it. One killed before it
   * attached (while this supervisor started) cannot close a lease: without this its VM would boot
   * and run for FIRST_LEASE_GRACE_MS (the chaos run saw 20 s).
   */
  private watchCreator(): void {
    const started = performance.now()
    const timer = setInterval(() => {
      if (this.everLeased || this.stopping) return clearInterval(timer)
      const creatorGone = !isAlive(this.spec.creatorPid)
      if (!creatorGone && performance.now() - started < FIRST_LEASE_GRACE_MS) return
      clearInterval(timer)
      void this.shutdown(
        creatorGone
          ? 'the process that created the VM exited before attaching to it'
          : 'no process attached to the VM after it was started',
      )
    }, 100)
    timer.unref()
  }

  private async boot(): Promise<void> {
    const started = performance.now()
    if (this.spec.accel.accel === 'kvm' && this.spec.accel.probe) {
      const probe = await this.startQemu('kvm', KVM_PROBE_MS)
      const kvmError = this.kvmError()
      // Alive is not yet usable: the verdict is written once this boot is ready (or fails on KVM).
      if (probe === 'alive') this.kvmOnProbation = true
      else if (probe === 'exited' && !kvmError) {
        // QEMU refused to start for a reason of its own (bad qemuArgs, say): not KVM's fault.
        throw new BootFailure('BOOT_FAILED', this.exitReason(this.lastExit.code, this.lastExit.signal))
      } else {
        const reason = kvmError
          ? `KVM at /dev/kvm failed a test boot (${kvmError.trim()})`
          : `KVM at /dev/kvm opened but a test guest showed no sign of life within ${KVM_PROBE_MS / 1000} s (a paravirtual or broken KVM)`
        recordVerdict(this.spec.cacheDir, false, reason)
        this.accel = 'tcg'
        this.accelReason = reason
        await this.stopQemu()
        this.qemuStderr = ''
      }
    }
    const bootStarted = performance.now()
    const deadline = bootStarted + this.bootTimeoutMs()
    const restored = !this.qemu && this.spec.templates ? await this.bootFromTemplate(deadline) : false
    if (!restored) {
      if (!this.qemu) await this.startQemu(this.accel)
      await this.raceBoot(this.connectAgentPort(), deadline)
      await this.raceBoot(this.waitUntilReady(deadline), deadline)
      this.qmp = await this.raceBoot(this.connectQmp(), deadline)
    }
    this.watchAgentPort()
    await this.readForwardedPorts()
    if (this.kvmOnProbation) recordVerdict(this.spec.cacheDir, true, '')
    this.bootMs = performance.now() - started
    this.state = 'ready'
    this.writeStatus()
    this.log(
      'ready in %d ms (%s%s)',
      Math.round(this.bootMs),
      this.accel,
      restored ? ', from a template' : '',
    )
    this.broadcast({ event: 'ready', status: this.status() })
  }

  /**
   * Boots from the template of this VM's definition, making it first if there is none (once across
   * processes: a kernel-released lock). A template that fails to restore is dropped with a warning
   * and false is returned, so the caller cold-boots: a bad template costs one slow boot, never a
   * hang or a failure.
   *
   * A template counts only once a VM made from it became ready (root mounted, agent answering):
   * the new one stays in its staging directory, invisible to other boots, until this VM restored
   * from it is ready, and goes with this VM's failure otherwise (a bad image, a kernel that cannot
   * mount the root, a guest that gave up).
   */
  private async bootFromTemplate(deadline: number): Promise<boolean> {
    const cache = this.spec.cacheDir
    // The accelerator in use, not the one asked for: after a failed KVM probe a TCG VM must not
    // make (or find) a template under KVM's key.
    const key = templateKey(this.definition())
    const waitLimit = performance.now() + (deadline - performance.now()) / 2
    for (;;) {
      // A stopping supervisor neither removes, makes nor locks a template (nor waits for one).
      this.assertNotStopping()
      const check = checkTemplate(cache, key)
      if (check && 'problem' in check) {
        this.warn(`the VM template ${key} is unusable (${check.problem}); rebuilding it`)
        removeTemplate(cache, key)
        continue
      }
      if (check) {
        if (ramDenserThanSaved(check.files)) await this.makeRamSparse(key, check.files)
        try {
          await this.restoreTemplate(check.files, deadline)
          touchTemplate(check.files)
          this.template = { key, made: false }
          // From here on it is this VM's own boot (its root mount): failures are real ones.
          await this.raceBoot(this.waitUntilReady(deadline), deadline)
          this.logRestore()
          return true
        } catch (error) {
          // Shutting down (the owner died, say) is no verdict on the template.
          if (this.restoredAgent || this.isTimeout(error) || this.stopping) throw error
          await this.abandonRestore()
          removeTemplate(cache, key)
          this.warn(`the VM template ${key} did not restore (${(error as Error).message}); rebuilding it`)
          continue
        }
      }
      const release = await tryLock(lockIn(this.spec.cacheDir, `vmctl-template-${key}`))
      if (!release) {
        // Another process is making it: wait for it, but a template is only a shortcut: past half
        // of this VM's boot time, boot cold rather than time out on someone else's build.
        if (performance.now() > waitLimit) {
          this.warn(`another process is still making VM template ${key}; booting without it`)
          return false
        }
        await delay(100)
        continue
      }
      try {
        // Made by another process between the check and the lock: use it.
        if (checkTemplate(cache, key)) continue
        return await this.bootFromNewTemplate(key, deadline)
      } finally {
        release()
      }
    }
  }

  /**
   * Makes a template's RAM file sparse again when it was copied without its holes (a CI cache
   * restored with plain tar: 1.1 GB instead of ~190 MB, and as much in every later save), once,
   * under the template's lock; when another process holds it (making or rewriting it), or the
   * rewrite fails (a full disk), the dense file is used as it is.
   */
  private async makeRamSparse(key: string, files: TemplateFiles): Promise<void> {
    const release = await tryLock(lockIn(this.spec.cacheDir, `vmctl-template-${key}`))
    if (!release) return
    try {
      if (!ramDenserThanSaved(files)) return
      const started = performance.now()
      const before = statSync(files.ram).blocks * 512
      const after = await rewriteSparse(files.ram)
      this.log(
        'template %s: RAM file made sparse again (%d MiB on disk, was %d MiB) in %d ms',
        key,
        Math.round(after / 2 ** 20),
        Math.round(before / 2 ** 20),
        Math.round(performance.now() - started),
      )
    } catch (error) {
      this.log('template %s: could not make its RAM file sparse: %s', key, (error as Error).message)
    } finally {
      release()
    }
  }

  /**
   * Makes the template (under its lock), boots this VM from it, and publishes it once this VM is
   * ready. A fresh template that does not restore costs a cold boot; any other failure is this
   * VM's, and the template goes with it.
   */
  private async bootFromNewTemplate(key: string, deadline: number): Promise<boolean> {
    const cache = this.spec.cacheDir
    const staging = await this.makeTemplate(key, deadline)
    const files = templateFiles(staging)
    try {
      try {
        await this.restoreTemplate(files, deadline)
      } catch (error) {
        if (this.restoredAgent || this.isTimeout(error) || this.stopping) throw error
        await this.abandonRestore()
        this.warn(`a fresh VM template did not restore (${(error as Error).message}); booting without one`)
        rmSync(staging, { recursive: true, force: true })
        return false
      }
      this.template = { key, made: true }
      await this.raceBoot(this.waitUntilReady(deadline), deadline)
    } catch (error) {
      this.log('template %s dropped: the VM made from it did not become ready', key)
      rmSync(staging, { recursive: true, force: true })
      throw error
    }
    // QEMU keeps its mapping of the RAM file across the rename; a later restore of a snapshot of
    // this VM starts a QEMU that maps it again, from where it now is.
    const published = publishTemplate(cache, staging, key)
    const memoryFile = this.qemuVariant.memoryFile
    if (memoryFile)
      this.qemuVariant = { ...this.qemuVariant, memoryFile: { ...memoryFile, path: published.ram } }
    this.log('template %s published: the VM made from it is ready', key)
    this.logRestore()
    const maxMiB = this.spec.templateCacheMiB ?? DEFAULT_TEMPLATE_CACHE_MB
    for (const evicted of evictTemplates(cache, maxMiB, key))
      this.log(
        'template cache over %d MiB: removed %s, last used %s',
        maxMiB,
        evicted.key,
        evicted.lastUsedAt,
      )
    return true
  }

  private assertNotStopping(): void {
    if (this.stopping) throw new BootFailure('BOOT_FAILED', 'the VM is shutting down')
  }

  private isTimeout(error: unknown): boolean {
    return error instanceof BootFailure && error.code === 'BOOT_TIMEOUT'
  }

  /** After a restore that failed for the template's sake: its QEMU goes, a cold boot may follow. */
  private async abandonRestore(): Promise<void> {
    this.qmp?.close()
    this.qmp = undefined
    await this.stopQemu()
    this.qemuStderr = ''
  }

  /**
   * Cold-boots with RAM written through to a file and saves the device state once the agent
   * answers, before the root is mounted. Returns the sealed template's staging directory (not yet
   * visible to other boots: see bootFromNewTemplate); removes it if anything fails.
   */
  private async makeTemplate(key: string, deadline: number): Promise<string> {
    const started = performance.now()
    removeStaleBuilds(templatesDir(this.spec.cacheDir))
    const staging = join(templatesDir(this.spec.cacheDir), `${key}.${process.pid}.staging`)
    rmSync(staging, { recursive: true, force: true })
    mkdirSync(staging, { recursive: true })
    const files = templateFiles(staging)
    try {
      await this.startQemu(this.accel, undefined, {
        memoryFile: { path: files.ram, shared: true },
        deferRoot: true,
      })
      await this.raceBoot(this.connectAgentPort(), deadline)
      await this.raceBoot(this.waitUntilHealthy(deadline, AGENT_HEALTH_SERVICE), deadline)
      const qmp = await this.raceBoot(this.connectQmp(), deadline)
      // Saved with the setup port's host connected, so restored VMs see no change on it.
      await this.raceBoot(this.setupPort, deadline)
      await this.parkAgent()
      await qmp.execute('stop')
      await saveDeviceState(qmp, files.state, true)
      qmp.close()
      await this.stopQemu()
      this.dropAgentPort()
      // Its boot's console goes with it: restored VMs show it, so a failure's console tail still
      // has the kernel's and the init's lines.
      writeFileSync(join(staging, 'console.log'), this.console.recentText())
      sealTemplate(staging, {
        version: 1,
        key,
        createdAt: new Date().toISOString(),
        memoryBytes: this.spec.memoryMiB * 1024 * 1024,
        summary: templateSummary(this.definition()),
      })
      this.log('template %s made in %d ms', key, Math.round(performance.now() - started))
      return staging
    } catch (error) {
      await this.stopQemu()
      rmSync(staging, { recursive: true, force: true })
      throw error
    }
  }

  private async restoreTemplate(files: TemplateFiles, deadline: number): Promise<void> {
    const started = performance.now()
    try {
      const boot = readFileSync(join(files.dir, 'console.log'))
      this.console.append(
        Buffer.concat([
          boot,
          Buffer.from(`\r\nvmctl: restored from template ${basename(files.dir).split('.')[0]}\r\n`),
        ]),
      )
    } catch {}
    await this.startQemu(this.accel, undefined, {
      memoryFile: { path: files.ram, shared: false },
      deferRoot: true,
      incoming: true,
    })
    const qmp = await this.raceBoot(this.connectQmp(), deadline)
    this.qmp = qmp
    // A restore that takes much longer than a cold boot would is a broken template, not a slow host.
    const restoreDeadline = Math.min(deadline, performance.now() + RESTORE_TIMEOUT_MS)
    const at = (): number => Math.round(performance.now() - started)
    let synced = -1
    this.mux.once('ready', () => {
      synced = at()
    })
    // Both ports connected before the state loads: their host side is as it was when the template
    // was saved, so the guest sees no change; guest-setup and the parked agent wake on our bytes.
    await this.raceRestore(this.connectAgentPort(true), restoreDeadline, deadline)
    await this.raceRestore(this.setupPort, restoreDeadline, deadline)
    await this.raceRestore(loadDeviceState(qmp, files.state, true), restoreDeadline, deadline)
    const loaded = performance.now()
    await this.raceRestore(this.refreshGuest(restoreDeadline), restoreDeadline, deadline)
    const refreshed = performance.now()
    // The template is proven: what fails from here on (the root mount, say) is this VM's own
    // failure, reported as such, not a reason to rebuild the template.
    this.restoredAgent = true
    this.restoreTimes = { started, loaded, refreshed, synced: () => synced }
  }

  /**
   * Like raceBoot, but running out of the restore's own budget is a restore failure (the template
   * is dropped), not a boot timeout.
   */
  private async raceRestore<T>(work: Promise<T>, restoreDeadline: number, bootDeadline: number): Promise<T> {
    try {
      return await this.raceBoot(work, restoreDeadline)
    } catch (error) {
      // The VM's own boot timeout (bootTimeoutMs) is a boot timeout, and says nothing of the template.
      const template = restoreDeadline < bootDeadline
      if (error instanceof BootFailure && error.code === 'BOOT_TIMEOUT' && template)
        throw new Error(`no answer within ${RESTORE_TIMEOUT_MS / 1000} s`)
      throw error
    }
  }

  /**
   * Makes a restored guest its own (clock, entropy, hostname) and starts its deferred root mount,
   * through guest-setup on its port (clone-refresh.c): no agent call, so it runs while the agent wakes.
   */
  private async refreshGuest(deadline: number): Promise<void> {
    const port = await this.setupPort
    if (!port) throw new BootFailure('BOOT_FAILED', this.exitReason(null, null))
    const signal = AbortSignal.timeout(Math.max(1, Math.round(deadline - performance.now())))
    try {
      // The module tree's place on this host: the guest's command line names the template maker's.
      const modules = this.spec.hostRoot && !this.spec.image ? this.spec.kernel.modulesDir : undefined
      const result = await port.refresh(this.spec.name, signal, modules)
      this.log('guest refreshed: clock stepped %d ms', result.clockStepMs)
    } catch (error) {
      if (signal.aborted)
        throw new BootFailure('BOOT_TIMEOUT', 'the restored VM did not refresh itself in time')
      throw error
    }
  }

  private logRestore(): void {
    const times = this.restoreTimes
    if (!times) return
    const since = (at: number) => Math.round(at - times.started)
    this.log(
      'restored from template, ready in %d ms (state loaded at %d, guest refreshed at %d, agent session at %d)',
      since(performance.now()),
      since(times.loaded),
      since(times.refreshed),
      times.synced(),
    )
  }

  /** The supervisor's health client, made once: reconnects with a short backoff after restores. */
  private healthClient(): HealthClient {
    if (!this.health) {
      this.health = new HealthClient(`unix://${this.dir.agentSocket}`, credentials.createInsecure(), {
        'grpc.initial_reconnect_backoff_ms': 50,
        'grpc.max_reconnect_backoff_ms': 250,
      })
    }
    return this.health
  }

  private snapshotFile(name: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
      throw new Error(
        `snapshot names are letters, digits, ".", "_" and "-" (up to 64), not ${JSON.stringify(name)}`,
      )
    }
    return join(this.dir.path, 'snapshots', name)
  }

  /** Drops the host end of the agent channel; calls in flight fail, new ones wait for reconnect. */
  private disconnectAgent(reason: string): void {
    this.stopVsockBridge()
    this.mux.detach(reason)
    this.dropAgentPort()
  }

  /**
   * Before a snapshot: the guest agent ends its session and idles waiting for the next HELLO, with
   * the port's host side still connected (see MuxSession.park). A guest restored from that state
   * wakes on the new host's first bytes instead of polling a port that had no host. Over vsock the
   * connection itself goes (the guest's bridge listens again).
   */
  private async parkAgent(): Promise<void> {
    if (this.usesVsock) {
      this.mux.detach('the VM is being snapshotted')
      this.stopVsockBridge()
      await delay(50)
      return
    }
    if (!(await this.mux.park(PARK_TIMEOUT_MS)))
      this.log('the guest agent did not acknowledge the park within %d ms; saving anyway', PARK_TIMEOUT_MS)
  }

  private dropAgentPort(): void {
    this.agentPortSocket?.destroy()
    this.agentPortSocket = undefined
  }

  /** After a snapshot or restore: a new session on the port (connecting it unless it still is). */
  private async reconnectAgent(deadline: number): Promise<void> {
    const socket = this.agentPortSocket
    if (this.mux.isAttached) {
      // Connected before the state loaded (a restore): the session is already starting.
    } else if (socket && !socket.destroyed && !this.usesVsock) this.mux.attach(socket, { peerParked: true })
    else await this.raceBoot(this.connectAgentPort(), deadline)
    await this.raceBoot(this.refreshGuest(deadline), deadline)
    await this.raceBoot(this.waitUntilReady(deadline), deadline)
  }

  /**
   * Saves the whole running VM (device state, all of its RAM and, in image mode, its disk overlay)
   * in the VM's directory. QEMU refuses while a 9p share is mounted; that is reported as what it
   * means.
   */
  private async snapshot(name: string): Promise<void> {
    const file = this.snapshotFile(name)
    const qmp = this.qmp
    if (this.state !== 'ready' || !qmp) throw new Error(`the VM is ${this.state}, not ready`)
    mkdirSync(join(this.dir.path, 'snapshots'), { recursive: true, mode: 0o700 })
    const started = performance.now()
    await this.parkAgent()
    await qmp.execute('stop')
    let failure: Error | undefined
    try {
      await saveDeviceState(qmp, `${file}.partial`, false)
      // The migration ended with the disks flushed and QEMU not writing them until `cont`: the
      // overlay now matches the RAM just saved, and a restore must bring both back together.
      if (this.spec.image)
        copyFileSync(this.spec.image.overlay, `${file}.qcow2`, fsConstants.COPYFILE_FICLONE)
      renameSync(`${file}.partial`, file)
    } catch (error) {
      rmSync(`${file}.partial`, { force: true })
      rmSync(`${file}.qcow2`, { force: true })
      const message = (error as Error).message
      failure = /VirtFS|9p|mount_tag/.test(message)
        ? new Error(
            `QEMU cannot snapshot a VM while a host directory is mounted in it over 9p (the kernel-mode root, or \`mounts\`): ${message}. Snapshots work for VMs with hostRoot: false and image-mode VMs without mounts; in kernel mode a fresh VM.up() is restored from a template in about a second instead`,
          )
        : (error as Error)
    }
    await qmp.execute('cont')
    await this.reconnectAgent(performance.now() + RESTORE_TIMEOUT_MS)
    if (failure) throw failure
    this.log('snapshot %s saved in %d ms', name, Math.round(performance.now() - started))
  }

  /** Replaces the running QEMU by one loaded from the snapshot: same sockets, name and host ports. */
  private async restore(name: string): Promise<void> {
    const file = this.snapshotFile(name)
    if (!existsSync(file)) {
      let known: string[] = []
      try {
        known = readdirSync(join(this.dir.path, 'snapshots')).filter((f) => !/\.(partial|qcow2)$/.test(f))
      } catch {}
      throw new Error(
        `this VM has no snapshot named ${JSON.stringify(name)} (it has ${known.length ? known.join(', ') : 'none'})`,
      )
    }
    if (this.state !== 'ready') throw new Error(`the VM is ${this.state}, not ready`)
    const started = performance.now()
    this.restoring = true
    try {
      this.disconnectAgent('the VM is being restored to a snapshot')
      this.qmp?.close()
      this.qmp = undefined
      await this.stopQemu()
      // Image mode: the disk as it was when the snapshot was taken (the snapshot's copy stays).
      if (this.spec.image)
        copyFileSync(`${file}.qcow2`, this.spec.image.overlay, fsConstants.COPYFILE_FICLONE)
      const deadline = performance.now() + RESTORE_TIMEOUT_MS
      await this.startQemu(this.accel, undefined, { ...this.qemuVariant, incoming: true }, this.ports)
      const qmp = await this.raceBoot(this.connectQmp(), deadline)
      this.qmp = qmp
      // As for templates: ports connected before the state loads leave the parked guest asleep.
      await this.raceBoot(this.connectAgentPort(true), deadline)
      await this.raceBoot(this.setupPort, deadline)
      await this.raceBoot(loadDeviceState(qmp, file, false), deadline)
      this.watchAgentPort()
      await this.reconnectAgent(deadline)
    } catch (error) {
      // A VM that cannot come back is gone: say so to every client, as if QEMU had died.
      this.restoring = false
      const reason = `restoring snapshot ${name} failed: ${(error as Error).message}`
      this.exitEvent = { event: 'exited', reason, consoleTail: this.console.lastLines() }
      this.broadcast(this.exitEvent)
      void this.shutdown(reason)
      throw error
    }
    this.restoring = false
    this.writeStatus()
    this.log('restored snapshot %s in %d ms', name, Math.round(performance.now() - started))
  }

  /** QMP, once QEMU has created its socket (right after spawn it may not have yet). */
  private async connectQmp(): Promise<QmpClient> {
    for (;;) {
      try {
        return await QmpClient.connect(this.dir.qmpSocket)
      } catch (error) {
        if (!this.qemu) throw error
        await delay(5)
      }
    }
  }

  private warn(message: string): void {
    this.log('warning: %s', message)
    this.warnings.push(message)
  }

  private async readForwardedPorts(): Promise<void> {
    if (this.spec.guestPorts.length === 0 || !this.qmp) return
    const forwards = parseUsernetForwards(await this.qmp.human('info usernet'))
    for (const port of this.spec.guestPorts) {
      const hostPort = forwards.get(port)
      if (!hostPort)
        throw new BootFailure('BOOT_FAILED', `QEMU did not set up the forward for guest port ${port}`)
      this.ports[String(port)] = hostPort
    }
  }

  private watchAgentPort(): void {
    if (!this.qmp) return
    this.qmp.on('event', (name, data) => {
      const port = data as { id?: string; open?: boolean } | undefined
      if (
        name !== 'VSERPORT_CHANGE' ||
        port?.id !== AGENT_PORT_DEVICE_ID ||
        port.open ||
        this.state !== 'ready'
      )
        return
      // The guest closed the agent's port: the agent process died. Without this the host would
      // only learn when the restarted agent announces itself, seconds later.
      const reason = 'the guest closed the agent port'
      this.log('agent lost: %s', reason)
      this.mux.resetPeer(reason)
      this.broadcast({ event: 'agent-lost', reason })
    })
  }

  /** Starts QEMU. With `probeMs`, says whether the console spoke within that time. */
  private startQemu(
    accel: Accelerator,
    probeMs?: number,
    variant: Pick<QemuCommandPlan, 'memoryFile' | 'incoming' | 'deferRoot'> = {},
    hostPorts: Record<string, number> = {},
  ): Promise<'alive' | 'silent' | 'exited'> {
    // shutdown() stops the QEMU it finds; one started after that would outlive it (and hang it).
    this.assertNotStopping()
    this.qemuVariant = variant
    const args = qemuArguments(
      qemuPlanFor(
        { ...this.spec, accel: { ...this.spec.accel, accel } },
        {
          ...variant,
          qmpSocket: this.dir.qmpSocket,
          agentSocket: this.dir.portSocket,
          setupSocket: this.dir.setupSocket,
          vsockPort: AGENT_VSOCK_PORT,
          hostPorts,
        },
      ),
    )
    for (const path of [this.dir.qmpSocket, this.dir.portSocket, this.dir.setupSocket, this.dir.vsockCidFile])
      rmSync(path, { force: true })
    // With vsock, vsock-bridge reserves a CID in the kernel and execs QEMU with the vhost fd.
    const command = this.usesVsock
      ? [this.spec.transport.bridge!, 'with-cid', this.dir.vsockCidFile, '--', this.spec.qemuBinary, ...args]
      : [this.spec.qemuBinary, ...args]
    const [file, fileArgs] = withParentDeathSignal(command)
    this.log('spawn %s', command.join(' '))
    const child = spawn(file, fileArgs, { stdio: ['ignore', 'pipe', 'pipe'] })
    this.qemu = child
    void this.setupPort.then((port) => port?.close())
    this.setupPort = GuestSetupPort.connect(this.dir.setupSocket, () => this.qemu === child)
    this.writeStatus()
    let firstOutput: (() => void) | undefined
    child.stdout?.on('data', (chunk: Buffer) => {
      this.console.append(chunk)
      firstOutput?.()
      // The guest reports a boot that cannot succeed on the console; fail now, not at the timeout.
      const failure = this.guestReportedFailure()
      if (failure && this.state === 'booting') this.guestFailure?.(failure)
    })
    child.stderr?.on('data', (chunk: Buffer) => {
      this.qemuStderr = (this.qemuStderr + chunk.toString()).slice(-8192)
      this.log('qemu stderr: %s', chunk.toString().trimEnd())
    })
    this.qemuExited = new Promise((resolve) => child.once('exit', () => resolve()))
    child.once('exit', (code, signal) => {
      this.lastExit = { code, signal }
      if (this.qemu === child) this.onQemuExit(code, signal)
    })
    child.once('error', (error) => {
      // QEMU could not be started at all: no 'exit' follows, so act as if it exited.
      this.qemuStderr += `\ncannot start ${this.spec.qemuBinary}: ${error.message}`
      if (child.exitCode === null && child.signalCode === null) child.emit('exit', 127, null)
    })
    if (probeMs === undefined) return Promise.resolve('alive')
    return new Promise((resolve) => {
      const timer = setTimeout(() => done('silent'), probeMs)
      const done = (verdict: 'alive' | 'silent' | 'exited') => {
        clearTimeout(timer)
        firstOutput = undefined
        child.off('exit', onExit)
        resolve(verdict)
      }
      const onExit = () => done('exited')
      firstOutput = () => done('alive')
      child.once('exit', onExit)
    })
  }

  private async stopQemu(): Promise<void> {
    const child = this.qemu
    this.qemu = undefined
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGKILL')
    await exited
  }

  private onQemuExit(code: number | null, signal: NodeJS.Signals | null): void {
    const reason = this.exitReason(code, signal)
    this.log('qemu exited: %s', reason)
    this.qemu = undefined
    this.stopVsockBridge()
    this.mux.detach(reason)
    if (this.state === 'booting' || this.restoring) return // boot() sees it through raceBoot
    if (this.state === 'ready') {
      this.exitEvent = { event: 'exited', reason, consoleTail: this.console.lastLines() }
      this.broadcast(this.exitEvent)
      void this.shutdown(reason)
    }
  }

  /**
   * What the guest said on its console about a boot that cannot succeed: the init giving up (a
   * runtime disk or helper that cannot work, an agent that cannot start) or a root it cannot mount.
   */
  private guestReportedFailure(): string | undefined {
    const fatal = this.console.find(GUEST_FATAL_LINE)
    // The init cannot know where this host keeps vmctl's cache (XDG_CACHE_HOME, VMCTL_CACHE_DIR).
    if (fatal)
      return `the guest's init gave up: ${fatal[1]!.replaceAll('~/.cache/vmctl', this.spec.cacheDir)}`
    const root = this.console.find(ROOT_FAILURE_LINE)
    if (root) return `the guest could not mount its root: ${root[1]}`
    return undefined
  }

  private kvmError(): string | undefined {
    return this.qemuStderr.match(/KVM internal error[^\n]*|kvm[^\n]*(failed|error)[^\n]*/i)?.[0]
  }

  /** This VM's definition as it boots: with the accelerator a KVM probe may have changed. */
  private definition(): LaunchSpec {
    return { ...this.spec, accel: { ...this.spec.accel, accel: this.accel } }
  }

  private exitReason(code: number | null, signal: NodeJS.Signals | null): string {
    const panic = this.console.panicLine()
    if (panic) return `the guest kernel panicked (${panic})`
    const reported = this.guestReportedFailure()
    if (reported) return reported
    if (signal) return `QEMU was killed by ${signal}`
    if (code === 0) return 'the guest shut down or rebooted (QEMU exited)'
    const stderr = this.qemuStderr.trim().split('\n').slice(-3).join(' | ')
    return `QEMU exited with status ${code}${stderr ? `: ${stderr}` : ''}`
  }

  /** Rejects as soon as QEMU dies or the boot deadline passes. */
  private raceBoot<T>(work: Promise<T>, deadline: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const child = this.qemu
      const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
        reject(new BootFailure('BOOT_FAILED', this.exitReason(code, signal)))
      if (!child || child.exitCode !== null || child.signalCode !== null) {
        reject(
          new BootFailure('BOOT_FAILED', this.exitReason(child?.exitCode ?? null, child?.signalCode ?? null)),
        )
        return
      }
      child.once('exit', onExit)
      const guestFailure = (message: string) => reject(new BootFailure('BOOT_FAILED', message))
      this.guestFailure = guestFailure
      // Reported between two waits: no new console output would bring it up again.
      const reported = this.guestReportedFailure()
      if (reported && this.state === 'booting') guestFailure(reported)
      const timer = setTimeout(
        () =>
          reject(
            new BootFailure(
              'BOOT_TIMEOUT',
              `the agent did not answer within ${Math.round(this.bootTimeoutMs() / 1000)} s`,
            ),
          ),
        Math.max(0, deadline - performance.now()),
      )
      work.then(resolve, reject).finally(() => {
        clearTimeout(timer)
        child.off('exit', onExit)
        // Only if still ours: this runs after the caller may have started its next raceBoot.
        if (this.guestFailure === guestFailure) this.guestFailure = undefined
      })
    })
  }

  private get usesVsock(): boolean {
    return this.spec.transport.transport === 'vsock'
  }

  /** `peerParked`: the guest was restored from a state saved after park() (see MuxSession.attach). */
  private async connectAgentPort(peerParked = false): Promise<void> {
    if (this.usesVsock) {
      this.vsockCid = await this.reservedCid()
      this.log('guest vsock CID %d', this.vsockCid)
      this.connectVsock(this.vsockCid)
      return
    }
    const socket = await connectChardev(this.dir.portSocket, () => this.qemu !== undefined)
    if (!socket) throw new BootFailure('BOOT_FAILED', this.exitReason(null, null))
    socket.on('error', (error) => this.log('agent port: %s', error.message))
    this.agentPortSocket = socket
    this.mux.attach(socket, { peerParked })
  }

  /** The CID vsock-bridge reserved for this VM (written before it execs QEMU). */
  private async reservedCid(): Promise<number> {
    for (;;) {
      try {
        const cid = Number.parseInt(readFileSync(this.dir.vsockCidFile, 'utf8'), 10)
        if (cid > 2) return cid
      } catch {}
      if (!this.qemu) throw new BootFailure('BOOT_FAILED', this.exitReason(null, null))
      await delay(5)
    }
  }

  /**
   * The host end of the vsock transport: `vsock-bridge connect` (Node has no AF_VSOCK) retries
   * until the agent listens, then carries the connection over its stdio. When the guest closes it
   * (the agent died), open channels fail at once and a new bridge waits for the restarted agent.
   */
  private connectVsock(cid: number): void {
    const [file, args] = withParentDeathSignal([
      this.spec.transport.bridge!,
      'connect',
      String(cid),
      String(AGENT_VSOCK_PORT),
    ])
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    this.vsockBridge = child
    child.stderr?.on('data', (chunk: Buffer) => this.log('vsock-bridge: %s', chunk.toString().trimEnd()))
    child.once('error', (error) => this.log('vsock-bridge: %s', error.message))
    const transport = Duplex.from({ readable: child.stdout!, writable: child.stdin! })
    transport.on('error', (error) => this.log('vsock transport: %s', error.message))
    child.once('exit', () => {
      if (this.vsockBridge !== child) return
      this.vsockBridge = undefined
      if (!this.qemu || this.state === 'stopping' || this.state === 'exited') return
      if (this.state === 'ready') {
        const reason = 'the guest agent closed its vsock connection'
        this.log('agent lost: %s', reason)
        this.broadcast({ event: 'agent-lost', reason })
      }
      setTimeout(() => {
        if (this.qemu && (this.state === 'booting' || this.state === 'ready')) this.connectVsock(cid)
      }, 50)
    })
    this.mux.attach(transport)
  }

  private stopVsockBridge(): void {
    const bridge = this.vsockBridge
    this.vsockBridge = undefined
    bridge?.kill('SIGKILL')
  }

  /**
   * Ready for commands: the agent answers on its channel (the multiplexer's session is up, so its
   * event loop runs with its gRPC server in place) and guest-setup reports the root mounted. No
   * gRPC call is needed: after a restore every HTTP/2 connection is set up by a guest whose
   * translation cache is cold, and VM.up()'s caller has already started its own.
   */
  private async waitUntilReady(deadline: number): Promise<void> {
    const port = await this.setupPort
    if (!port) throw new BootFailure('BOOT_FAILED', this.exitReason(null, null))
    const signal = AbortSignal.timeout(Math.max(1, Math.round(deadline - performance.now())))
    const session = new Promise<void>((resolve, reject) => {
      if (this.mux.isReady) return resolve()
      const ready = () => {
        signal.removeEventListener('abort', aborted)
        resolve()
      }
      const aborted = () => {
        this.mux.off('ready', ready)
        reject(new BootFailure('BOOT_TIMEOUT', 'the agent did not answer in time'))
      }
      this.mux.once('ready', ready)
      signal.addEventListener('abort', aborted)
    })
    const root = port.rootReady(signal).catch((error: Error) => {
      if (error instanceof RootMountError)
        throw new BootFailure('BOOT_FAILED', `the guest could not mount its root: ${error.message}`)
      if (signal.aborted) throw new BootFailure('BOOT_TIMEOUT', 'the guest did not mount its root in time')
      throw error
    })
    await Promise.all([session, root])
  }

  private async waitUntilHealthy(deadline: number, service: string): Promise<void> {
    const client = this.healthClient()
    for (;;) {
      const status = await new Promise<ServingStatus | Error>((resolve) => {
        const metadata = new Metadata()
        metadata.setOptions({ waitForReady: true })
        const call = client.watch({ service }, metadata, {
          deadline: new Date(Date.now() + Math.max(1, deadline - performance.now())),
        })
        call.on('data', (response: { status: ServingStatus }) => {
          if (response.status === ServingStatus.SERVING) {
            resolve(ServingStatus.SERVING)
            call.cancel()
          }
        })
        call.on('error', (error: Error) => resolve(error))
        call.on('end', () => resolve(new Error('health watch ended')))
      })
      if (status === ServingStatus.SERVING) return
      if (performance.now() >= deadline)
        throw new BootFailure('BOOT_TIMEOUT', 'the agent did not report healthy in time')
      this.log('health watch: %s', (status as Error).message)
      await delay(100)
    }
  }

  /** A raw byte channel: the first line names the agent's raw service (see raw-services.ts). */
  private onRawClient(socket: net.Socket): void {
    let head = Buffer.alloc(0)
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk])
      const newline = head.indexOf(0x0a)
      if (newline < 0) return
      socket.off('data', onData)
      socket.pause()
      const rest = head.subarray(newline + 1)
      if (rest.length > 0) socket.unshift(rest)
      this.onAgentClient(socket, head.subarray(0, newline).toString('utf8'))
      socket.resume()
    }
    socket.on('data', onData)
    socket.on('error', () => {})
  }

  private onAgentClient(socket: net.Socket, service = ''): void {
    if (this.state === 'stopping' || this.state === 'exited') {
      socket.destroy()
      return
    }
    const channel = this.mux.openChannel(service)
    socket.pipe(channel)
    channel.pipe(socket)
    socket.on('error', () => channel.destroy())
    socket.on('close', () => channel.destroy())
    channel.on('error', () => socket.destroy())
    channel.on('close', () => socket.destroy())
  }

  private onControlClient(socket: net.Socket): void {
    const client: ControlClient = { socket, lease: false, attached: false }
    this.clients.add(client)
    const decoder = new LineDecoder()
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      for (const message of decoder.push(chunk)) void this.onControlRequest(client, message as ControlRequest)
    })
    socket.on('error', () => {})
    // A lease ends when its holder's socket does, for whatever reason: that is what reaps the VMs
    // of crashed test runners. (Not half-open: the end of their side is the end of the lease.)
    socket.on('close', () => {
      this.clients.delete(client)
      if (!client.lease) return
      this.leases--
      if (this.leases === 0 && !this.spec.persistent)
        void this.shutdown('the process that created the VM exited')
    })
  }

  private async onControlRequest(client: ControlClient, request: ControlRequest): Promise<void> {
    const send = (message: unknown) => {
      if (!client.socket.destroyed) client.socket.write(encodeMessage(message))
    }
    switch (request.op) {
      case 'attach':
        client.attached = true
        if (request.lease && !client.lease) {
          client.lease = true
          this.leases++
          this.everLeased = true
        }
        send({ reply: 'attach', status: this.status() })
        if (this.failure) send({ event: 'failed', error: this.failure })
        else if (this.exitEvent) send(this.exitEvent)
        else if (this.state === 'ready') send({ event: 'ready', status: this.status() })
        return
      case 'status':
        send({ reply: 'status', status: this.status() })
        return
      case 'destroy':
        await this.shutdown('destroyed on request', () => send({ reply: 'destroy', ok: true }))
        return
      case 'snapshot':
      case 'restore': {
        const work = this.snapshotQueue.then(() =>
          request.op === 'snapshot' ? this.snapshot(request.name) : this.restore(request.name),
        )
        this.snapshotQueue = work.catch(() => {})
        try {
          await work
          send({ reply: request.op, ok: true })
        } catch (error) {
          this.log('%s %s failed: %s', request.op, request.name, (error as Error).message)
          send({ reply: request.op, ok: false, error: (error as Error).message })
        }
        return
      }
      default:
        send({ reply: 'error', message: `unknown op ${(request as { op: string }).op}` })
    }
  }

  private broadcast(event: ControlEvent): void {
    for (const client of this.clients) {
      if (client.attached && !client.socket.destroyed) client.socket.write(encodeMessage(event))
    }
  }

  private status(): VmStatus {
    return {
      name: this.spec.name,
      state: this.state,
      pid: process.pid,
      qemuPid: this.qemu?.pid,
      accel: this.accel,
      accelReason: this.accelReason,
      transport: this.spec.transport.transport,
      vsockCid: this.vsockCid,
      warnings: this.warnings,
      template: this.template,
      createdAt: this.spec.createdAt,
      persistent: this.spec.persistent,
      ports: this.ports,
      bootMs: this.bootMs,
    }
  }

  private bootTimeoutMs(): number {
    return (
      this.spec.bootTimeoutMs ??
      (this.accel === 'kvm' ? DEFAULT_BOOT_TIMEOUT_KVM_MS : DEFAULT_BOOT_TIMEOUT_TCG_MS)
    )
  }

  private writeStatus(): void {
    try {
      this.dir.writeStatus(this.status())
    } catch {}
  }

  /** Stops QEMU (QMP quit, then SIGKILL), closes every socket, removes the VM directory. */
  shutdown(reason: string, beforeClose?: () => void): Promise<void> {
    if (this.stopping) {
      if (beforeClose) void this.stopping.then(beforeClose)
      return this.stopping
    }
    this.stopping = (async () => {
      this.log('shutting down: %s', reason)
      this.state = 'stopping'
      this.writeStatus()
      const child = this.qemu
      if (child && child.exitCode === null && child.signalCode === null) {
        this.qemu = undefined
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
        // Nothing in a throwaway guest needs a clean power-down: QMP quit (or SIGTERM before QMP is
        // up) ends QEMU at once; SIGKILL if it does not.
        let how = this.qmp ? 'QMP quit' : 'SIGTERM'
        if (this.qmp) {
          try {
            await Promise.race([this.qmp.execute('quit'), delay(500)])
          } catch {}
        } else child.kill('SIGTERM')
        const forced = await Promise.race([exited.then(() => false), delay(QUIT_GRACE_MS).then(() => true)])
        if (forced) {
          how = 'SIGKILL'
          child.kill('SIGKILL')
          await exited
        }
        this.log('QEMU stopped by %s', how)
      }
      await this.qemuExited
      this.health?.close()
      this.stopVsockBridge()
      this.qmp?.close()
      this.mux.detach(reason)
      if (!this.exitEvent && !this.failure) {
        this.exitEvent = { event: 'exited', reason, consoleTail: '' }
        this.broadcast(this.exitEvent)
      }
      this.state = 'exited'
      this.agentServer?.close()
      this.rawServer?.close()
      this.console.close()
      this.dir.remove()
      beforeClose?.()
      // Let the last events and replies flush, then go.
      setTimeout(() => process.exit(0), 100).unref()
      for (const client of this.clients) client.socket.end()
      this.controlServer?.close()
    })()
    return this.stopping
  }
}

/** Runs `command` so that it is SIGKILLed when this supervisor dies, whatever kills it. */
function withParentDeathSignal(command: string[]): [string, string[]] {
  return existsSync(SETPRIV)
    ? [SETPRIV, ['--pdeathsig', 'KILL', '--', ...command]]
    : [command[0]!, command.slice(1)]
}

function listen(
  path: string,
  allowHalfOpen: boolean,
  onConnection: (socket: net.Socket) => void,
): Promise<net.Server> {
  rmSync(path, { force: true })
  return new Promise((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen }, onConnection)
    server.once('error', reject)
    server.listen(path, () => resolve(server))
  })
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
