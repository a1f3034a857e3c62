import { status as grpcStatus, Metadata, type ServiceError } from '@grpc/grpc-js'
import type { AgentClient } from '@vmctl/agent'
import { AgentError, HostDiskFullError, VmctlError, VmExitedError, VmStoppedError } from '../errors.js'
import type { JoinedNetworks } from '../network/joined-networks.js'
import type { ControlEvent, VmState, VmStatus } from '../supervisor/control-protocol.js'
import { type DiskFullPaused, RESUME_FREE_MIB } from '../supervisor/disk-full-pause.js'
import type { SupervisorClient } from '../supervisor/supervisor-client.js'
import type { VmDirectory } from '../supervisor/vm-directory.js'
import { pollUntil } from '../util/timing.js'
import { agentClient, closeAgentClient } from './agent-client.js'
import { awaitTeardown, destroyThrough } from './destroy-vm.js'
import type { GuestProcess } from './guest-process.js'
import { powerRequest, type StopResult, stopResult } from './vm-power.js'

/** What a boot or an attach hands over; `new VM(parts)` and `new VmConnection(parts)` take it. */
export interface VmParts {
  status: VmStatus
  control: SupervisorClient
  directory: VmDirectory
  /** Added to the environment of every command run in the VM. */
  env: Record<string, string>
  /** The agent client; a fresh one (which connects on its first call) when absent. */
  agent?: AgentClient
  /** A booted VM's networks, to address in the guest once it has a handle (network/guest-network.ts). */
  networks?: JoinedNetworks
}

/** How long after a transport error we wait for the supervisor to say the VM died. */
const DEATH_NOTICE_MS = 1_500
/** The deadline of a unary agent call (info, shutdown), and of waiting for QEMU to exit after one. */
export const CALL_TIMEOUT_MS = 30_000

/** A unary method of AgentClient, called with its deadline. */
type UnaryCall<T> = (
  agent: AgentClient,
  metadata: Metadata,
  options: { deadline: Date },
  callback: (error: ServiceError | null, response?: T) => void,
) => void

/**
 * One VM as seen from the caller's process: its supervisor's control connection and the agent
 * client, whether the VM still lives, and the translation of a failed call into an error that says
 * what happened (the VM died, the agent refused, the agent restarted). Everything on the caller's
 * side (VM, exec.ts, files.ts, provisioning-vm.ts) runs through one of these.
 */
export class VmConnection {
  readonly name: string
  readonly control: SupervisorClient
  readonly directory: VmDirectory
  readonly env: Record<string, string>
  private currentAgent: AgentClient
  private lastStatus: VmStatus
  private exitError: VmExitedError | undefined
  private destroying: Promise<void> | undefined
  /** The console's last lines when QEMU ended unasked. */
  private unaskedTail = ''
  private readonly running = new Set<GuestProcess>()
  /** While QEMU holds the guest paused for a full disk: the error every call gets. */
  private diskFull: HostDiskFullError | undefined
  /** Agent calls in flight (callAgent), failed at once when the guest is paused for a full disk. */
  private readonly inFlight = new Set<(error: Error) => void>()

  constructor(parts: VmParts) {
    this.name = parts.status.name
    this.lastStatus = parts.status
    this.control = parts.control
    this.directory = parts.directory
    this.env = parts.env
    this.currentAgent = parts.agent ?? agentClient(parts.directory)
    if (parts.status.diskFull) this.diskFull = diskFullError(this.name, parts.status.diskFull)
    this.control.on('event', (event: ControlEvent) => {
      if (event.event === 'disk-full') this.pausedForRoom(event.paused)
      else if (event.event === 'disk-room') this.diskFull = undefined
      else if (event.event === 'exited') this.markExited(event.reason, event.consoleTail)
      else if (event.event === 'ready') this.becameReady(event.status)
      else if (event.event === 'stopped') this.markStopped('stopped', event)
      else if (event.event === 'ports') this.notePorts(event.ports)
      else if (event.event === 'agent-lost') {
        this.failRunning(
          new AgentError(
            this.name,
            `the guest agent process died (${event.reason}); the guest restarts it, so calls made from now on work again`,
          ),
        )
        this.renewAgentClient(
          `the guest agent process died (${event.reason}); calls made from now on work again`,
        )
      }
    })
    this.control.on('close', () => this.markExited('its supervisor process exited', ''))
  }

  /** The supervisor's last word on the VM (updated when a snapshot restore reports ready again). */
  get status(): VmStatus {
    return this.lastStatus
  }

  /** The current agent client: replaced after the guest agent restarted. */
  get agent(): AgentClient {
    return this.currentAgent
  }

  /** Why the VM is gone, once it is. */
  get exited(): VmExitedError | undefined {
    return this.exitError
  }

  /** Throws when the VM is gone or being destroyed, or paused for a full disk: the guard of every call. */
  assertUsable(): void {
    this.assertDefined()
    const { state } = this.lastStatus
    if (state === 'stopped' || state === 'powering-off' || state === 'starting') throw this.stoppedError()
    if (this.diskFull) throw this.diskFull
  }

  /** QEMU paused the guest for a full disk: what waits on it fails now, with the file and the fix. */
  private pausedForRoom(paused: DiskFullPaused): void {
    this.diskFull = diskFullError(this.name, paused)
    this.failRunning(this.diskFull)
    for (const fail of [...this.inFlight]) fail(this.diskFull)
  }

  /** The error for a call on this VM while it is not running: with the cause if it was not asked. */
  private stoppedError(): VmStoppedError {
    const { state, stopped } = this.lastStatus
    return stopped?.unexpected
      ? new VmStoppedError(this.name, state, stopped.how, this.unaskedTail)
      : new VmStoppedError(this.name, state)
  }

  /** Throws when the VM is gone or being destroyed (a stopped VM is still defined). */
  private assertDefined(): void {
    if (this.exitError) throw this.exitError
    if (this.destroying) throw new VmExitedError(this.name, 'it was destroyed', '')
  }

  /**
   * Where the VM is in its life: `ready`, `stopped` after `stop()`, `exited` once destroyed or
   * dead; `powering-off` and `starting` while `stop()`, `start()` or `restart()` run.
   */
  get state(): VmState {
    if (this.exitError || this.destroying) return 'exited'
    return this.lastStatus.state
  }

  /** Powers the guest off; the VM stays defined. Stopping a stopped VM does nothing (`how` says so). */
  async stop(): Promise<StopResult> {
    this.assertDefined()
    if (this.lastStatus.state === 'ready') this.markStopped('powering-off')
    const reply = await powerRequest(this.control, this.name, { op: 'stop' }).catch((e) => this.resync(e))
    this.markStopped('stopped')
    return stopResult(reply)
  }

  /** Boots a stopped VM again from its disks; resolves when it is ready. */
  async start(): Promise<void> {
    this.assertDefined()
    await powerRequest(this.control, this.name, { op: 'start' }).catch((e) => this.resync(e))
    this.becameReady(this.lastStatus)
  }

  /** Reboots the guest (`hard`: a reset through QEMU) and resolves when the VM is ready again. */
  async restart(hard: boolean): Promise<void> {
    this.assertUsable()
    this.markStopped('starting')
    await powerRequest(this.control, this.name, { op: 'restart', hard }).catch((e) => this.resync(e))
    this.becameReady(this.lastStatus)
  }

  /** The guest ports forwarded now (one was added while the VM ran: port-forward.ts). */
  notePorts(ports: Record<string, number>): void {
    this.lastStatus = { ...this.lastStatus, ports: { ...this.lastStatus.ports, ...ports } }
  }

  /** The VM is not running (`state`): what runs in it ends (with the cause, if it was not asked). */
  private markStopped(
    state: 'powering-off' | 'stopped' | 'starting',
    event?: { how: string; unexpected?: boolean; consoleTail?: string },
  ): void {
    const stopped = event && { how: event.how, unexpected: !!event.unexpected, at: new Date().toISOString() }
    this.lastStatus = { ...this.lastStatus, state, stopped: stopped ?? this.lastStatus.stopped }
    if (event?.unexpected) this.unaskedTail = event.consoleTail ?? ''
    this.failRunning(this.stoppedError())
  }

  /** Ready (again): after a start, calls go over a new connection (the old one ended with QEMU). */
  private becameReady(status: VmStatus): void {
    const wasReady = this.lastStatus.state === 'ready'
    this.lastStatus = { ...status, state: 'ready', stopped: undefined }
    if (!wasReady)
      this.renewAgentClient(
        'the VM went down and came back (a stop and start, or a restart) while it ran; calls made from now on work again',
      )
  }

  /** After a refused or failed stop, start or restart: the state as the supervisor has it, then the error. */
  private async resync(error: unknown): Promise<never> {
    const status = await this.control.status().catch(() => undefined)
    if (status) this.lastStatus = status
    throw error
  }

  /** Keeps `process` in the set that a VM death, a destroy or an agent restart fails. */
  track(process: GuestProcess): GuestProcess {
    this.running.add(process)
    const forget = () => this.running.delete(process)
    process.wait().then(forget, forget)
    return process
  }

  /** Fails every process still running in the guest with `error`. */
  failRunning(error: Error): void {
    for (const process of [...this.running]) process.fail(error)
  }

  /** Runs an agent call, turning gRPC errors into errors that name the VM and the operation. */
  async callAgent<T>(what: string, work: () => Promise<T>): Promise<T> {
    let fail: (error: Error) => void = () => {}
    const paused = new Promise<never>((_, reject) => {
      fail = reject
    })
    this.inFlight.add(fail)
    try {
      return await Promise.race([work(), paused])
    } catch (error) {
      const explained = await this.explainFailure(error as Error)
      if (explained instanceof AgentError && !(error as ServiceError).details) {
        throw new AgentError(this.name, `${what} failed: ${(error as Error).message}`, { cause: error })
      }
      if (explained instanceof AgentError) {
        const code = grpcStatus[(error as ServiceError).code] ?? 'UNKNOWN'
        throw new AgentError(this.name, (error as ServiceError).details, { cause: error, grpcCode: code })
      }
      throw explained
    } finally {
      this.inFlight.delete(fail)
    }
  }

  /** A unary agent call (info, shutdown) with the call deadline, through callAgent. */
  unary<T>(what: string, call: UnaryCall<T>): Promise<T> {
    return this.callAgent(
      what,
      () =>
        new Promise<T>((resolve, reject) =>
          call(
            this.currentAgent,
            new Metadata(),
            { deadline: new Date(Date.now() + CALL_TIMEOUT_MS) },
            (error, response) => (error ? reject(error) : resolve(response as T)),
          ),
        ),
    )
  }

  /** Turns a transport error into "the VM died (console tail)" when that is what happened. */
  async explainFailure(error: Error): Promise<Error> {
    if (this.exitError) return this.exitError
    if (error instanceof VmctlError) return error
    const code = (error as ServiceError).code
    if (
      code === grpcStatus.UNAVAILABLE ||
      code === grpcStatus.CANCELLED ||
      code === grpcStatus.INTERNAL ||
      code === undefined
    ) {
      const ended = await pollUntil(
        () => this.exitError ?? (this.lastStatus.stopped?.unexpected ? this.stoppedError() : undefined),
        { timeoutMs: DEATH_NOTICE_MS, everyMs: 50 },
      )
      if (ended) return ended
    }
    // The agent refused the request (a missing cwd or user): its own words, and the gRPC code so a
    // caller (the CLI's exit status) can tell bad input from a broken call.
    const details = (error as ServiceError).details
    if (
      details &&
      (code === grpcStatus.NOT_FOUND ||
        code === grpcStatus.INVALID_ARGUMENT ||
        code === grpcStatus.FAILED_PRECONDITION)
    )
      return new AgentError(this.name, details, { cause: error, grpcCode: grpcStatus[code] })
    return new AgentError(this.name, `agent call failed: ${details || error.message}`, { cause: error })
  }

  /** Resolves once the supervisor reported the VM gone or stopped, or after `timeoutMs`. */
  async untilDown(timeoutMs: number): Promise<void> {
    await pollUntil(() => this.exitError || this.lastStatus.state === 'stopped', { timeoutMs, everyMs: 50 })
  }

  /** Asks the supervisor to save or roll back a snapshot; throws with its reason if it could not. */
  async snapshotRequest(request: { op: 'snapshot' | 'restore'; name: string }): Promise<void> {
    if (this.exitError) throw this.exitError
    // A guest paused with a disk write pending cannot park its agent; a restore is a way out.
    if (request.op === 'snapshot' && this.diskFull) throw this.diskFull
    const reply = await this.control.request(request)
    if (reply.reply === 'closed')
      throw this.exitError ?? new VmExitedError(this.name, 'its supervisor exited', '')
    if (reply.ok !== true) {
      throw new VmctlError(
        request.op === 'snapshot' ? 'SNAPSHOT_FAILED' : 'RESTORE_FAILED',
        `${request.op} ${JSON.stringify(request.name)} of VM ${this.name} failed: ${String(reply.error)}`,
      )
    }
  }

  /** Stops the VM and removes everything it had on the host. Idempotent. */
  destroy(handOff = false): Promise<void> {
    this.destroying ??= (async () => {
      this.failRunning(new VmExitedError(this.name, 'it was destroyed', ''))
      closeAgentClient(this.currentAgent, `VM ${this.name} was destroyed`)
      await destroyThrough(this.control, this.directory, handOff)
      this.control.close()
    })()
    // A destroy that waits, after one that handed the teardown off: it waits for the rest too.
    return handOff ? this.destroying : this.destroying.then(() => awaitTeardown(this.directory))
  }

  /** Lets go of the VM without stopping it (a persistent or attached VM keeps running). */
  close(): void {
    closeAgentClient(this.currentAgent, `the handle of VM ${this.name} was closed`)
    this.control.close()
  }

  /**
   * After the guest agent died: calls from now on go over a new connection, which waits for the
   * restarted agent. The old one is dead, but this event can arrive before its socket's close does:
   * a call made at once would be put on it by grpc-js and fail with ECONNRESET. The old client's
   * calls still open are cancelled, with `reason` in their error.
   */
  private renewAgentClient(reason: string): void {
    if (this.destroying) return
    const old = this.currentAgent
    this.currentAgent = agentClient(this.directory)
    closeAgentClient(old, reason)
  }

  private markExited(reason: string, consoleTail: string): void {
    if (this.exitError) return
    this.exitError = new VmExitedError(this.name, reason, consoleTail)
    this.failRunning(this.exitError)
  }
}

/** The error of a call on a VM whose guest QEMU paused because a disk file's filesystem is full. */
function diskFullError(name: string, paused: DiskFullPaused): HostDiskFullError {
  const free = paused.freeMiB === undefined ? '' : `, ${paused.freeMiB} MiB free`
  return new HostDiskFullError(
    paused.directory,
    `VM ${name}'s disk ${paused.file}${free}`,
    `free space there. QEMU paused VM ${name} at that write; it goes on by itself once ${RESUME_FREE_MIB} MiB are free, the write retried and nothing lost (or destroy the VM)`,
  )
}
