import { type ChildProcess, spawn } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { rmSync } from 'node:fs'
import { AGENT_VSOCK_PORT } from '@vmctl/agent'
import type { Accelerator } from '../host/accelerator.js'
import type { LaunchSpec } from '../launch-spec.js'
import type { logger } from '../log.js'
import { type QemuCommandPlan, qemuArguments } from '../qemu/qemu-command.js'
import { qemuPlanFor } from '../qemu/qemu-plan.js'
import { parseUsernetForwards, QmpClient } from '../qemu/qmp-client.js'
import { processCpuMs } from '../util/process-cpu.js'
import { sleep } from '../util/timing.js'
import { connectWhenReady } from '../util/unix-socket.js'
import type { ConsoleLog } from './console-log.js'
import type { EarlyQemu } from './early-qemu.js'
import { GuestSetupPort } from './guest-setup-port.js'
import { withParentDeathSignal } from './parent-death.js'
import { mark } from './restore-timeline.js'
import { type QemuSockets, qemuSocketsIn, type VmDirectory } from './vm-directory.js'

/** How this QEMU starts: cold, making a template (RAM written through), or loading a saved state. */
export type QemuVariant = Pick<QemuCommandPlan, 'memoryFile' | 'incoming' | 'deferRoot'>

export interface QemuProcessOptions {
  spec: LaunchSpec
  accel: Accelerator
  dir: VmDirectory
  console: ConsoleLog
  log: ReturnType<typeof logger>
  variant?: QemuVariant
  /** Host port per guest port, to keep them across a restore; empty: the kernel picks. */
  hostPorts?: Record<string, number>
  /** Runs QEMU through this (vsock-bridge reserving the guest's CID), see agent-link.ts. */
  commandPrefix?: string[]
  /** A QEMU the supervisor started first (early-qemu.ts): adopted if it runs this very command. */
  early?: EarlyQemu | undefined
}

/** The whole command (parent-death wrapper, prefix, QEMU and its arguments) that starts this QEMU. */
export function qemuLaunchCommand(
  options: Pick<QemuProcessOptions, 'spec' | 'accel' | 'variant' | 'hostPorts' | 'commandPrefix'> & {
    sockets: QemuSockets
  },
): string[] {
  const { spec, sockets } = options
  const args = qemuArguments(
    qemuPlanFor(
      { ...spec, accel: { ...spec.accel, accel: options.accel } },
      {
        ...(options.variant ?? {}),
        qmpSocket: sockets.qmp,
        agentSocket: sockets.port,
        setupSocket: sockets.setup,
        vsockPort: AGENT_VSOCK_PORT,
        hostPorts: options.hostPorts ?? {},
      },
    ),
  )
  const [file, fileArgs] = withParentDeathSignal([...(options.commandPrefix ?? []), spec.qemuBinary, ...args])
  return [file, ...fileArgs]
}

/** guest-setup's report of a root it could not mount (packages/agent/native/mount-root.c). */
const ROOT_FAILURE_LINE = /vmctl-init: root: ([^\r\n]*)\r?\n/
/** The init's report of a boot that cannot succeed, with its cause and fix (init-script.ts fatal). */
const GUEST_FATAL_LINE = /vmctl-init: fatal: ([^\r\n]*)\r?\n/

/**
 * One QEMU process of a VM: its command line, console, stderr tail, QMP connection, setup port
 * and exit. Emits `exit` (with the reason in words) once, and `guest-failure` when the guest says
 * on its console that its boot cannot succeed. A VM has one at a time; a snapshot rollback or a
 * failed template clone replaces it.
 */
export class QemuProcess extends EventEmitter<{
  exit: [reason: string]
  'guest-failure': [message: string]
}> {
  readonly variant: QemuVariant
  /** The guest's setup port, connecting from QEMU's start (see GuestSetupPort). */
  readonly setupPort: Promise<GuestSetupPort | undefined>
  /** Resolves when the process is gone (at once for one that could not start). */
  readonly exited: Promise<void>
  private readonly child: ChildProcess
  private readonly options: QemuProcessOptions
  private readonly sockets: QemuSockets
  private stderr = ''
  private exitStatus: { code: number | null; signal: NodeJS.Signals | null } | undefined
  private qmpClient: QmpClient | undefined
  private qmpConnecting: Promise<QmpClient> | undefined
  private firstOutput: (() => void) | undefined
  private readonly startedAt = performance.now()
  private cpuMsAtEnd: number | undefined
  private endedAt: number | undefined
  private hostFailure: string | undefined

  constructor(options: QemuProcessOptions) {
    super()
    this.options = options
    this.variant = options.variant ?? {}
    const { spec, dir } = options
    // A QEMU started before its VM was known listens in a directory of its own (early-qemu.ts).
    let sockets = qemuSocketsIn(options.early?.socketDir ?? dir.path)
    let command = qemuLaunchCommand({ ...options, sockets })
    // Started already (its sockets are up or coming: keep them), or spawned now.
    const early = options.early?.take(command)
    if (!early) {
      sockets = qemuSocketsIn(dir.path)
      command = qemuLaunchCommand({ ...options, sockets })
      for (const path of [sockets.qmp, sockets.port, sockets.setup, dir.vsockCidFile, dir.incomingSocket])
        rmSync(path, { force: true })
    }
    this.sockets = sockets
    options.console.newRun()
    options.log('%s %s', early ? 'adopted, started early:' : 'spawn', command.join(' '))
    const child = early ?? spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    mark(spec.name, early ? 'qemu adopted (spawned early)' : 'qemu spawned')
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()))
    child.stdout?.on('data', (chunk: Buffer) => {
      options.console.append(chunk)
      this.firstOutput?.()
      // The guest reports a boot that cannot succeed on the console; fail now, not at the timeout.
      const failure = this.guestReportedFailure()
      if (failure) this.emit('guest-failure', failure)
    })
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-8192)
      options.log('qemu stderr: %s', chunk.toString().trimEnd())
    })
    child.once('exit', (code, signal) => {
      this.exitStatus = { code, signal }
      this.qmpClient?.close()
      const reason = this.exitReason()
      options.log('qemu exited: %s', reason)
      this.emit('exit', reason)
    })
    child.once('error', (error) => {
      // QEMU could not be started at all: no 'exit' follows, so act as if it exited.
      this.stderr += `\ncannot start ${spec.qemuBinary}: ${error.message}`
      if (child.exitCode === null && child.signalCode === null) child.emit('exit', 127, null)
    })
    this.setupPort = GuestSetupPort.connect(sockets.setup, () => this.alive)
  }

  get alive(): boolean {
    return this.exitStatus === undefined
  }

  /**
   * CPU time this QEMU has used (summed over its threads), and the wall time since it was
   * started: the CPU time read just before vmctl ended it, once it has. Undefined where /proc
   * cannot say.
   */
  usage(): { cpuMs: number; ranMs: number } | undefined {
    const cpuMs = this.alive ? processCpuMs(this.pid) : this.cpuMsAtEnd
    return cpuMs === undefined
      ? undefined
      : { cpuMs, ranMs: (this.endedAt ?? performance.now()) - this.startedAt }
  }

  /** Notes the CPU time used before vmctl ends this QEMU (usage()). */
  private noteUsage(): void {
    if (!this.alive) return
    this.cpuMsAtEnd = processCpuMs(this.pid)
    this.endedAt = performance.now()
  }

  get pid(): number | undefined {
    return this.child.pid
  }

  /** QEMU's end of the agent's virtio-serial port. */
  get portSocket(): string {
    return this.sockets.port
  }

  /** Where this QEMU listens for a saved state (started with `incoming`). */
  get incomingSocket(): string {
    return this.options.dir.incomingSocket
  }

  get qmp(): QmpClient | undefined {
    return this.qmpClient
  }

  /** Says whether the console spoke within `ms` (the KVM probe's sign of life). */
  probe(ms: number): Promise<'alive' | 'silent' | 'exited'> {
    if (!this.alive) return Promise.resolve('exited')
    return new Promise((resolve) => {
      const done = (verdict: 'alive' | 'silent' | 'exited') => {
        clearTimeout(timer)
        this.firstOutput = undefined
        this.off('exit', onExit)
        resolve(verdict)
      }
      const timer = setTimeout(() => done('silent'), ms)
      const onExit = () => done('exited')
      this.firstOutput = () => done('alive')
      this.once('exit', onExit)
    })
  }

  /**
   * QMP, once QEMU has created its socket (right after spawn it may not have yet). One connection
   * for every caller, however many ask at once: QEMU's monitor serves one client at a time, and a
   * second connection would wait unanswered behind the first.
   */
  connectQmp(): Promise<QmpClient> {
    this.qmpConnecting ??= (async () => {
      const socket = await connectWhenReady(this.sockets.qmp, () => this.alive)
      if (!socket) throw new Error(this.exitReason())
      this.qmpClient = await QmpClient.over(socket)
      return this.qmpClient
    })()
    // A failed attempt is not kept: the next caller tries again (and learns that QEMU is gone).
    this.qmpConnecting.catch(() => {
      this.qmpConnecting = undefined
    })
    return this.qmpConnecting
  }

  /**
   * The host port QEMU forwards to each of `guestPorts` (keys: qemu/guest-port.ts), by key; set up
   * with host port 0, the kernel picked it.
   */
  async forwardedPorts(guestPorts: string[]): Promise<Record<string, number>> {
    const ports: Record<string, number> = {}
    if (guestPorts.length === 0) return ports
    const qmp = await this.connectQmp()
    const forwards = parseUsernetForwards(await qmp.human('info usernet'))
    for (const key of guestPorts) {
      const hostPort = forwards.get(key)
      if (!hostPort) throw new Error(`QEMU did not set up the forward for guest port ${key}`)
      ports[key] = hostPort
    }
    return ports
  }

  /** SIGKILL, for a QEMU whose guest state is of no further use. */
  async kill(): Promise<void> {
    this.qmpClient?.close()
    if (!this.alive) return
    this.noteUsage()
    this.child.kill('SIGKILL')
    await this.exited
  }

  /**
   * Ends QEMU at once for a teardown (nothing in a throwaway guest needs a clean power-down): QMP
   * quit, or SIGTERM before QMP is up; SIGKILL after `graceMs`. Says which ended it.
   */
  async quit(graceMs: number): Promise<string | undefined> {
    if (!this.alive) return undefined
    this.noteUsage()
    const how = this.qmpClient ? 'QMP quit' : 'SIGTERM'
    if (this.qmpClient) await Promise.race([this.qmpClient.execute('quit').catch(() => {}), sleep(500)])
    else this.child.kill('SIGTERM')
    return this.endWithin(graceMs, how)
  }

  /** Waits up to `graceMs` for QEMU to exit, then SIGKILLs it; returns `how` or 'SIGKILL'. */
  async endWithin(graceMs: number, how: string): Promise<string> {
    const forced = await Promise.race([this.exited.then(() => false), sleep(graceMs).then(() => true)])
    if (!forced) return how
    this.child.kill('SIGKILL')
    await this.exited
    return 'SIGKILL'
  }

  /**
   * The host found that this QEMU's boot cannot succeed (its guest was paused for a full disk):
   * the boot's waits fail with `message` at once, as for a failure the guest reports.
   */
  failBoot(message: string): void {
    this.hostFailure ??= message
    this.emit('guest-failure', message)
  }

  /**
   * What the guest said on its console about a boot that cannot succeed: the init giving up (a
   * runtime disk or helper that cannot work, an agent that cannot start) or a root it cannot mount;
   * or what the host found (failBoot).
   */
  guestReportedFailure(): string | undefined {
    if (this.hostFailure) return this.hostFailure
    const fatal = this.options.console.find(GUEST_FATAL_LINE)
    // The init cannot know where this host keeps vmctl's cache (XDG_CACHE_HOME, VMCTL_CACHE_DIR).
    if (fatal)
      return `the guest's init gave up: ${fatal[1]!.replaceAll('~/.cache/vmctl', this.options.spec.cacheDir)}`
    const root = this.options.console.find(ROOT_FAILURE_LINE)
    if (root) return `the guest could not mount its root: ${root[1]}`
    return undefined
  }

  /** QEMU's own report of a KVM failure on stderr. */
  kvmError(): string | undefined {
    return this.stderr.match(/KVM internal error[^\n]*|kvm[^\n]*(failed|error)[^\n]*/i)?.[0]
  }

  /** The signal that ended QEMU, if one did (null while it runs or after an exit of its own). */
  get killedBy(): NodeJS.Signals | null {
    return this.exitStatus?.signal ?? null
  }

  /** Why QEMU ended, if it did not end by exiting 0 on its own (a panic, a failure the guest reported, a signal). */
  abnormalExit(): string | undefined {
    const clean =
      this.exitStatus?.code === 0 && !this.options.console.panicLine() && !this.guestReportedFailure()
    return clean ? undefined : this.exitReason()
  }

  /** Why this QEMU is gone (or, while it runs, the guest's own report of a failure, if any). */
  exitReason(): string {
    const panic = this.options.console.panicLine()
    if (panic) return `the guest kernel panicked (${panic})`
    const reported = this.guestReportedFailure()
    if (reported) return reported
    const { code = null, signal = null } = this.exitStatus ?? {}
    if (signal) return `QEMU was killed by ${signal}`
    if (code === 0) return 'the guest shut down or rebooted (QEMU exited)'
    const stderr = this.stderr.trim().split('\n').slice(-3).join(' | ')
    return `QEMU exited with status ${code}${stderr ? `: ${stderr}` : ''}`
  }
}
