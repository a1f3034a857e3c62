import { createReadStream, createWriteStream, mkdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, isAbsolute, join, relative, resolve } from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { status as grpcStatus, Metadata, type ServiceError } from '@grpc/grpc-js'
import type { AgentClient, InfoResponse } from '@vmctl/agent'
import * as tar from 'tar'
import { loadConfig, mergeOptions } from '../config/config-file.js'
import { AgentError, InvalidOptionsError, VmctlError, VmExitedError, VmNotFoundError } from '../errors.js'
import type { ProvisioningVm } from '../images/provision.js'
import { memberAddressOf, type VmNetwork } from '../network/vm-network.js'
import type { ControlEvent, VmStatus } from '../supervisor/control-protocol.js'
import { SupervisorClient } from '../supervisor/supervisor-client.js'
import { VmDirectory } from '../supervisor/vm-directory.js'
import { agentClient } from './agent-client.js'
import { bootVm } from './boot-vm.js'
import { forceRemove } from './destroy-vm.js'
import { displayCommand, ExecError, type ExecResult, execResult } from './exec-result.js'
import { pullStream, pushStream } from './file-transfer.js'
import { type GuestLogEntry, type LogsOptions, streamLogs } from './guest-logs.js'
import { GuestProcess } from './guest-process.js'
import { type SharedVmOptions, upShared } from './shared-vm.js'
import { type VmOptions, validateVmOptions } from './vm-options.js'

export interface ProcessOptions {
  /** Added to the VM's environment for this command. */
  env?: Record<string, string>
  /** Working directory in the guest. Default "/". */
  cwd?: string
  /** Run as this guest user ("name", "uid", "name:group"). Default root. */
  user?: string
  /** Kill the command (its whole process group, SIGKILL) after this many ms. */
  timeoutMs?: number
}

export interface ExecOptions extends ProcessOptions {
  /** Fed to the command's stdin, then closed. Without it stdin is /dev/null. */
  input?: string | Buffer | Readable
  /** false: resolve with the result instead of rejecting when the command fails. Default true. */
  reject?: boolean
  /** Live copies of the output as it arrives (the result still holds all of it). */
  stdout?: Writable
  stderr?: Writable
  /** false: do not keep the output in the result (for large streamed output). Default true. */
  buffer?: boolean
  /** "buffer": stdout and stderr as Buffers, bytes untouched. Default "utf8". */
  encoding?: 'utf8' | 'buffer'
}

export interface SpawnOptions extends ProcessOptions {
  /** "pipe": `process.stdin` is writable; otherwise the guest's stdin is /dev/null. */
  stdin?: 'pipe' | 'ignore'
}

export interface FileOptions {
  /** Permission bits in the guest. Default: the local file's, or 0644. */
  mode?: number
  /** Owner in the guest: "user", "user:group" or numeric ids. Default root. */
  owner?: string
  /** Create missing parent directories. Default true. */
  parents?: boolean
  /** Deadline for the transfer. Default 10 minutes. */
  timeoutMs?: number
}

/** A process started with `vm.spawn()`. */
export interface VmProcess {
  readonly stdout: Readable
  readonly stderr: Readable
  readonly stdin: Writable | undefined
  /** The guest pid, once started. */
  readonly pid: Promise<number>
  /** Resolves with the result when the process exits (never rejects for a non-zero exit). */
  wait(): Promise<ExecResult>
  /** Signals the process group. Default SIGTERM. */
  kill(signal?: NodeJS.Signals): void
}

/** How long after a transport error we wait for the supervisor to say the VM died. */
const DEATH_NOTICE_MS = 1_500
const TRANSFER_TIMEOUT_MS = 10 * 60_000
const CALL_TIMEOUT_MS = 30_000
const DESTROY_TIMEOUT_MS = 15_000

let warnedAboutTcg = false

/**
 * A running VM. Get one with `VM.up()`; dispose of it with `destroy()` or `await using`.
 *
 * @example
 * ```ts
 * await using vm = await VM.up()
 * const { stdout } = await vm.exec('uname -r')
 * ```
 */
export class VM implements AsyncDisposable {
  readonly name: string
  private statusSnapshot: VmStatus
  private readonly control: SupervisorClient
  private readonly directory: VmDirectory
  private agent: AgentClient
  private readonly defaultEnv: Record<string, string>
  private readonly owned: boolean
  private exitError: VmExitedError | undefined
  private destroying: Promise<void> | undefined
  private readonly running = new Set<GuestProcess>()

  /** @internal Use VM.up() or VM.attach(). */
  constructor(
    status: VmStatus,
    control: SupervisorClient,
    directory: VmDirectory,
    env: Record<string, string>,
    owned: boolean,
    agent?: AgentClient,
  ) {
    this.name = status.name
    this.statusSnapshot = status
    this.control = control
    this.directory = directory
    this.owned = owned
    this.defaultEnv = env
    this.agent = agent ?? agentClient(directory)
    control.on('event', (event: ControlEvent) => {
      if (event.event === 'exited') this.markExited(event.reason, event.consoleTail)
      else if (event.event === 'ready') this.statusSnapshot = event.status
      else if (event.event === 'agent-lost') {
        const error = new AgentError(
          this.name,
          `the guest agent process died (${event.reason}); the guest restarts it, so calls made from now on work again`,
        )
        for (const process of [...this.running]) process.fail(error)
        this.renewAgentClient()
      }
    })
    control.on('close', () => this.markExited('its supervisor process exited', ''))
    if (
      status.accel === 'tcg' &&
      status.accelReason &&
      !warnedAboutTcg &&
      !/=tcg$/.test(status.accelReason)
    ) {
      warnedAboutTcg = true
      process.stderr.write(
        `vmctl: KVM is not usable, using TCG software emulation (5-10x slower): ${status.accelReason}\n`,
      )
    }
    for (const warning of status.warnings ?? []) process.stderr.write(`vmctl: ${warning}\n`)
  }

  /**
   * Boots a fresh VM and resolves once its agent answers and its root is mounted. Given a path, the
   * VM is described by that vmctl.toml (docs/config.md), and `options` override the file's fields.
   *
   * @example
   * ```ts
   * await using vm = await VM.up('vmctl.toml', { memoryMiB: 2048 })
   * ```
   */
  static up(options?: VmOptions): Promise<VM>
  static up(configFile: string, options?: VmOptions): Promise<VM>
  static up(first?: VmOptions | string, overrides?: VmOptions): Promise<VM> {
    let options: VmOptions | undefined
    try {
      options =
        typeof first === 'string'
          ? mergeOptions(loadConfig(first, { name: overrides?.name }).options, validateVmOptions(overrides))
          : first
    } catch (error) {
      return Promise.reject(error)
    }
    return bootVm(
      options,
      (status, control, directory, env, agent) =>
        new VM(status, control, directory, env, !options?.persistent, agent),
      { provisioner: provisioningVm },
    )
  }

  /**
   * Boots a VM that outlives this process (like `vmctl up`): `close()` leaves it running, reach it
   * with `vmctl exec NAME -- sh`, end it with `destroy()` or `vmctl down NAME`.
   */
  static upPersistent(options?: Omit<VmOptions, 'persistent'>): Promise<VM> {
    return VM.up({ ...options, persistent: true })
  }

  /**
   * The VM called `name`, booted once and used by every process that asks (test workers), counted
   * across processes and destroyed when the last one lets go. See `upShared` in shared-vm.ts.
   */
  static upShared(name: string, options?: SharedVmOptions): Promise<VM> {
    return upShared(name, options)
  }

  /** A handle on a running VM made elsewhere (`vmctl up`); `close()` leaves the VM running. */
  static async attach(name: string): Promise<VM> {
    const directory = new VmDirectory(name)
    let control: SupervisorClient
    try {
      control = await SupervisorClient.connect(directory.controlSocket)
    } catch {
      throw new VmNotFoundError(name)
    }
    // A VM still booting (vmctl up in another shell) is waited for, not reported missing.
    const ready = new Promise<VmStatus | undefined>((resolve) => {
      control.on('event', (event) => resolve(event.event === 'ready' ? event.status : undefined))
      control.on('close', () => resolve(undefined))
    })
    const reply = await control.request({ op: 'attach', lease: false })
    let status = reply.status as VmStatus | undefined
    if (status?.state === 'booting') status = await ready
    if (status?.state !== 'ready') {
      control.close()
      throw new VmNotFoundError(name)
    }
    control.unref()
    return new VM(status, control, directory, {}, false)
  }

  /** "kvm" or "tcg". */
  get accel(): string {
    return this.statusSnapshot.accel
  }

  /** How the host reaches the agent: "vsock" or "virtio-serial" (see VmOptions.transport). */
  get transport(): 'vsock' | 'virtio-serial' {
    return this.statusSnapshot.transport
  }

  /**
   * The template this VM was restored from (`made`: this boot made it first), or undefined for a
   * cold boot (VMCTL_TEMPLATES=0, a KVM probe boot, or a template that could not be used).
   */
  get template(): { key: string; made: boolean } | undefined {
    return this.statusSnapshot.template
  }

  /** The guest's vsock CID (vsock transport only). */
  get vsockCid(): number | undefined {
    return this.statusSnapshot.vsockCid
  }

  /** Milliseconds from QEMU spawn to agent ready, as measured by the supervisor. */
  get bootMs(): number | undefined {
    return this.statusSnapshot.bootMs
  }

  /** Every forwarded port: guest port → host port on 127.0.0.1. */
  get ports(): Record<number, number> {
    return Object.fromEntries(Object.entries(this.statusSnapshot.ports).map(([g, h]) => [Number(g), h]))
  }

  /** Its IPv4 address on `network` (one it joined with `VM.up({ networks })`), e.g. "10.213.0.10". */
  ip(network: VmNetwork | string): string {
    return memberAddressOf(network, this.name)
  }

  /** The host port (on 127.0.0.1) that reaches `guestPort` in the VM. */
  forwardedPort(guestPort: number): number {
    const port = this.statusSnapshot.ports[String(guestPort)]
    if (port === undefined) {
      const known = Object.keys(this.statusSnapshot.ports)
      throw new InvalidOptionsError(
        `guest port ${guestPort} is not forwarded; pass it in VM.up({ ports: [${guestPort}] })${known.length ? ` (forwarded: ${known.join(', ')})` : ''}`,
      )
    }
    return port
  }

  /**
   * Runs a command in the VM: a string goes to /bin/sh -c, an array is argv. Resolves with exit
   * code, stdout and stderr kept apart; rejects with an ExecError carrying the same fields if the
   * command fails, unless `reject: false`.
   */
  exec(command: string | string[], options: ExecOptions & { encoding: 'buffer' }): Promise<ExecResult<Buffer>>
  exec(command: string | string[], options?: ExecOptions): Promise<ExecResult>
  async exec(command: string | string[], options: ExecOptions = {}): Promise<ExecResult<string | Buffer>> {
    const process = this.startProcess(command, options, options.input !== undefined)
    const keep = options.buffer !== false
    const stdout: Buffer[] = []
    const stderr: Buffer[] = []
    const relay = (source: Readable, chunks: Buffer[], target: Writable | undefined) =>
      source.on('data', (chunk: Buffer) => {
        if (keep) chunks.push(chunk)
        // A slow target pauses the stream, and so the call and the process in the guest.
        if (target && !target.write(chunk)) {
          source.pause()
          target.once('drain', () => source.resume())
        }
      })
    relay(process.stdout, stdout, options.stdout)
    relay(process.stderr, stderr, options.stderr)
    if (options.input !== undefined) process.feed(options.input).catch((error: Error) => process.fail(error))
    const outcome = await process.wait()
    const decode = (chunks: Buffer[]): string | Buffer =>
      options.encoding === 'buffer' ? Buffer.concat(chunks) : Buffer.concat(chunks).toString('utf8')
    const result = execResult(displayCommand(command), outcome, decode(stdout), decode(stderr))
    if (result.failed && options.reject !== false) throw new ExecError(this.name, result)
    return result
  }

  /**
   * Where a host path is seen in the guest, or undefined when it is not: in kernel mode the host
   * root is the guest's (same paths); in image mode only `mounts` reach the host. The CLI runs
   * commands in the guest's view of the current directory, or in / when it has none.
   */
  guestPathOf(hostPath: string): string | undefined {
    let spec: { hostRoot?: string; image?: unknown; mounts?: { host: string; guest: string }[] }
    try {
      spec = JSON.parse(readFileSync(this.directory.launchFile, 'utf8'))
    } catch {
      return undefined
    }
    const path = resolve(hostPath)
    for (const mount of spec.mounts ?? []) {
      const rel = relative(mount.host, path)
      if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))) return join(mount.guest, rel)
    }
    if (spec.image || !spec.hostRoot) return undefined
    const rel = relative(spec.hostRoot, path)
    return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel)) ? join('/', rel) : undefined
  }

  /**
   * Starts a process in the background and returns a handle: live output streams, `wait()`,
   * `kill()`. The process is reaped in the guest when it exits.
   */
  spawn(command: string | string[], options: SpawnOptions = {}): VmProcess {
    const process = this.startProcess(command, options, options.stdin === 'pipe')
    const display = displayCommand(command)
    return {
      stdout: process.stdout,
      stderr: process.stderr,
      stdin: process.stdin,
      pid: process.whenStarted(),
      kill: (signal) => process.kill(signal),
      wait: async () => execResult(display, await process.wait(), '', ''),
    }
  }

  private startProcess(
    command: string | string[],
    options: ProcessOptions,
    pipeStdin: boolean,
  ): GuestProcess {
    this.assertUsable()
    if ((typeof command === 'string' && !command) || (Array.isArray(command) && command.length === 0)) {
      throw new InvalidOptionsError('exec needs a command: a shell string or a non-empty argv array')
    }
    const start = {
      argv: Array.isArray(command) ? command : [],
      shell: typeof command === 'string' ? command : '',
      env: { ...this.defaultEnv, ...options.env },
      cwd: options.cwd ?? '/',
      timeoutMs: options.timeoutMs ?? 0,
      stdin: pipeStdin,
      user: options.user ?? '',
    }
    // The agent enforces the timeout; the deadline only guards against an agent that never answers.
    const deadline = options.timeoutMs ? new Date(Date.now() + options.timeoutMs + 30_000) : undefined
    const process = new GuestProcess(this.agent, start, deadline, pipeStdin, (error) =>
      this.explainFailure(error),
    )
    this.running.add(process)
    const forget = () => this.running.delete(process)
    process.wait().then(forget, forget)
    return process
  }

  /** Copies a local file into the guest, atomically (temp file, then rename). */
  async push(localPath: string, remotePath: string, options: FileOptions = {}): Promise<void> {
    this.assertUsable()
    const mode = options.mode ?? statSync(localPath).mode & 0o7777
    await this.callAgent(`push ${localPath} to ${remotePath}`, () =>
      pushStream(
        this.agent,
        this.fileHeader(remotePath, { ...options, mode }, false),
        createReadStream(localPath, { highWaterMark: 256 * 1024 }),
        this.transferDeadline(options),
      ),
    )
  }

  /** Writes `data` to a guest file, atomically. */
  async writeFile(remotePath: string, data: string | Buffer, options: FileOptions = {}): Promise<void> {
    this.assertUsable()
    await this.callAgent(`write ${remotePath}`, () =>
      pushStream(
        this.agent,
        this.fileHeader(remotePath, options, false),
        Buffer.from(data),
        this.transferDeadline(options),
      ),
    )
  }

  /** A guest file's contents. Rejects with code NOT_FOUND naming the path if it is missing. */
  async pull(remotePath: string, options: { timeoutMs?: number } = {}): Promise<Buffer> {
    this.assertUsable()
    return this.callAgent(`read ${remotePath}`, async () => {
      const { stat, stream } = pullStream(this.agent, remotePath, false, this.transferDeadline(options))
      await stat
      const chunks: Buffer[] = []
      for await (const chunk of stream) chunks.push(chunk as Buffer)
      return Buffer.concat(chunks)
    })
  }

  /** A guest file as text (or bytes with encoding "buffer"). */
  readFile(remotePath: string): Promise<string>
  readFile(remotePath: string, encoding: 'buffer'): Promise<Buffer>
  async readFile(remotePath: string, encoding: 'utf8' | 'buffer' = 'utf8'): Promise<string | Buffer> {
    const data = await this.pull(remotePath)
    return encoding === 'buffer' ? data : data.toString('utf8')
  }

  /** Streams a guest file to a local path (for files too big to hold in memory). */
  async pullTo(remotePath: string, localPath: string, options: { timeoutMs?: number } = {}): Promise<void> {
    this.assertUsable()
    await this.callAgent(`read ${remotePath}`, async () => {
      const { stat, stream } = pullStream(this.agent, remotePath, false, this.transferDeadline(options))
      await stat
      mkdirSync(dirname(localPath), { recursive: true })
      await pipeline(stream, createWriteStream(localPath))
    })
  }

  /** Copies a local directory into the guest (created, with parents, if missing). */
  async copyDirTo(localDir: string, remoteDir: string, options: FileOptions = {}): Promise<void> {
    this.assertUsable()
    if (!statSync(localDir).isDirectory()) throw new InvalidOptionsError(`${localDir} is not a directory`)
    const archive = tar.c({ cwd: localDir, portable: false }, ['.']) as unknown as Readable
    await this.callAgent(`copy ${localDir} to ${remoteDir}`, () =>
      pushStream(
        this.agent,
        this.fileHeader(remoteDir, options, true),
        archive,
        this.transferDeadline(options),
      ),
    )
  }

  /** Copies a guest directory to a local one (created if missing). */
  async copyDirFrom(
    remoteDir: string,
    localDir: string,
    options: { timeoutMs?: number } = {},
  ): Promise<void> {
    this.assertUsable()
    await this.callAgent(`copy ${remoteDir} from the guest`, async () => {
      const { stat, stream } = pullStream(this.agent, remoteDir, true, this.transferDeadline(options))
      await stat
      mkdirSync(localDir, { recursive: true })
      await pipeline(stream, tar.x({ cwd: localDir }) as unknown as Writable)
    })
  }

  /** Kernel release, OS, uptime, CPUs, memory and addresses of the guest. */
  async info(): Promise<InfoResponse> {
    this.assertUsable()
    return this.callAgent(
      'info',
      () =>
        new Promise<InfoResponse>((resolve, reject) => {
          this.agent.info(
            {},
            new Metadata(),
            { deadline: new Date(Date.now() + CALL_TIMEOUT_MS) },
            (error, response) => (error ? reject(error) : resolve(response!)),
          )
        }),
    )
  }

  /**
   * The guest's logs: kernel log, the agent's own log, and the serial console, from the start of
   * boot; with `follow`, new entries as they come until the loop breaks or the VM ends.
   */
  logs(options: LogsOptions = {}): AsyncIterable<GuestLogEntry> {
    this.assertUsable()
    return streamLogs(this.agent, this.directory.consoleLog, options)
  }

  /** Powers the guest off (or reboots it, which under vmctl also ends the VM) and cleans up. */
  async shutdown(options: { reboot?: boolean } = {}): Promise<void> {
    this.assertUsable()
    try {
      await this.callAgent(
        'shutdown',
        () =>
          new Promise<void>((resolve, reject) => {
            this.agent.shutdown(
              { reboot: !!options.reboot },
              new Metadata(),
              { deadline: new Date(Date.now() + CALL_TIMEOUT_MS) },
              (error) => (error ? reject(error) : resolve()),
            )
          }),
      )
    } catch (error) {
      // The guest may be gone before its answer arrives: that is the point.
      if (!(error instanceof VmExitedError)) throw error
    }
    // Wait (bounded) for the supervisor to see QEMU exit, then clean up either way.
    const deadline = Date.now() + CALL_TIMEOUT_MS
    while (!this.exitError && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    await this.destroy()
  }

  private fileHeader(path: string, options: FileOptions, directory: boolean) {
    if (!path.startsWith('/'))
      throw new InvalidOptionsError(`guest paths must be absolute, got ${JSON.stringify(path)}`)
    return {
      path,
      mode: options.mode ?? 0,
      owner: options.owner ?? '',
      parents: options.parents ?? true,
      directory,
    }
  }

  private transferDeadline(options: { timeoutMs?: number }): Date {
    return new Date(Date.now() + (options.timeoutMs ?? TRANSFER_TIMEOUT_MS))
  }

  /** Runs an agent call, turning gRPC errors into errors that name the VM and the operation. */
  private async callAgent<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work()
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
    }
  }

  private assertUsable(): void {
    if (this.exitError) throw this.exitError
    if (this.destroying) throw new VmExitedError(this.name, 'it was destroyed', '')
  }

  /**
   * After the guest agent died: calls from now on go over a new connection, which waits for the
   * restarted agent. The old one is dead, but this event can arrive before its socket's close does:
   * a call made at once would be put on it by grpc-js and fail with ECONNRESET.
   */
  private renewAgentClient(): void {
    if (this.destroying) return
    const old = this.agent
    this.agent = agentClient(this.directory)
    old.close()
  }

  /** Turns a transport error into "the VM died (console tail)" when that is what happened. */
  private async explainFailure(error: Error): Promise<Error> {
    if (this.exitError) return this.exitError
    if (error instanceof VmctlError) return error
    const code = (error as ServiceError).code
    if (
      code === grpcStatus.UNAVAILABLE ||
      code === grpcStatus.CANCELLED ||
      code === grpcStatus.INTERNAL ||
      code === undefined
    ) {
      const deadline = Date.now() + DEATH_NOTICE_MS
      while (Date.now() < deadline && !this.exitError) await new Promise((r) => setTimeout(r, 50))
      if (this.exitError) return this.exitError
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

  private markExited(reason: string, consoleTail: string): void {
    if (this.exitError) return
    this.exitError = new VmExitedError(this.name, reason, consoleTail)
    for (const process of [...this.running]) process.fail(this.exitError)
  }

  /**
   * Saves the running VM (memory, devices, processes) as `name`, kept in the VM's directory until it
   * is destroyed. Calls in flight while it is taken fail; the VM then runs on. QEMU cannot save a VM
   * whose root is the host's over 9p (the default kernel mode): use `hostRoot: false` or an image.
   */
  async snapshot(name: string): Promise<void> {
    await this.snapshotRequest({ op: 'snapshot', name })
  }

  /**
   * Puts the VM back to snapshot `name` in place: the same handle, name and forwarded ports, with
   * the guest clock stepped to now and its RNG reseeded. Running processes and calls in flight end.
   */
  async restore(name: string): Promise<void> {
    for (const process of [...this.running])
      process.fail(new AgentError(this.name, `the VM was restored to snapshot ${name}`))
    await this.snapshotRequest({ op: 'restore', name })
  }

  private async snapshotRequest(request: { op: 'snapshot' | 'restore'; name: string }): Promise<void> {
    if (this.exitError) throw this.exitError
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
  destroy(): Promise<void> {
    if (!this.destroying) {
      this.destroying = (async () => {
        for (const process of [...this.running])
          process.fail(new VmExitedError(this.name, 'it was destroyed', ''))
        this.agent.close()
        if (!this.control.isClosed) {
          const answered = await Promise.race([
            this.control.request({ op: 'destroy' }).then(() => true),
            new Promise<false>((r) => setTimeout(() => r(false), DESTROY_TIMEOUT_MS).unref()),
          ])
          // A supervisor that does not answer is killed; its QEMU dies with it (PDEATHSIG).
          if (!answered) forceRemove(this.directory)
        }
        this.control.close()
      })()
    }
    return this.destroying
  }

  /**
   * Drops this handle. A VM made by VM.up() is destroyed; a persistent or attached one keeps
   * running.
   */
  async close(): Promise<void> {
    if (this.owned) return this.destroy()
    this.agent.close()
    this.control.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

/** The VM that runs provisioning steps (images/provision.ts); its overlay becomes the layer. */
async function provisioningVm(options: VmOptions, overlay: string): Promise<ProvisioningVm> {
  const vm = await bootVm(
    options,
    (status, control, directory, env, agent) => new VM(status, control, directory, env, true, agent),
    {
      overlay,
    },
  )
  return {
    async spawnStep(step, onOutput) {
      const process = vm.spawn(['sh', '-c', step])
      process.stdout.setEncoding('utf8').on('data', onOutput)
      process.stderr.setEncoding('utf8').on('data', onOutput)
      return (await process.wait()).exitCode ?? 128
    },
    async sync() {
      await vm.exec(['sync'])
    },
    destroy: () => vm.destroy(),
  }
}
