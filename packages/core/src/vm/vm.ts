import type { Readable, Writable } from 'node:stream'
import {
  type ClientDuplexStream,
  credentials,
  status as grpcStatus,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js'
import { AgentClient, type ExecRequest, type ExecResponse } from '@vmctl/agent'
import { AgentError, InvalidOptionsError, VmExitedError, VmNotFoundError } from '../errors.js'
import type { ControlEvent, VmStatus } from '../supervisor/control-protocol.js'
import { SupervisorClient } from '../supervisor/supervisor-client.js'
import { VmDirectory } from '../supervisor/vm-directory.js'
import { bootVm } from './boot-vm.js'
import { displayCommand, ExecError, type ExecResult } from './exec-result.js'
import type { VmOptions } from './vm-options.js'

export interface ExecOptions {
  /** Added to the VM's environment for this command. */
  env?: Record<string, string>
  /** Working directory in the guest. Default "/". */
  cwd?: string
  /** Fed to the command's stdin, then closed. Without it stdin is /dev/null. */
  input?: string | Buffer | Readable
  /** Kill the command (its whole process group, SIGKILL) after this many ms. */
  timeoutMs?: number
  /** false: resolve with the result instead of rejecting when the command fails. Default true. */
  reject?: boolean
  /** Live copies of the output as it arrives (the result still holds all of it). */
  stdout?: Writable
  stderr?: Writable
  /** false: do not keep the output in the result (for large streamed output). Default true. */
  buffer?: boolean
}

const STDIN_CHUNK = 64 * 1024
/** How long after a transport error we wait for the supervisor to say the VM died. */
const DEATH_NOTICE_MS = 1_500

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
  private readonly agent: AgentClient
  private readonly defaultEnv: Record<string, string>
  private readonly owned: boolean
  private exitError: VmExitedError | undefined
  private destroying: Promise<void> | undefined
  private readonly pending = new Set<(error: Error) => void>()

  /** @internal Use VM.up() or VM.attach(). */
  constructor(
    status: VmStatus,
    control: SupervisorClient,
    directory: VmDirectory,
    env: Record<string, string>,
    owned: boolean,
  ) {
    this.name = status.name
    this.statusSnapshot = status
    this.control = control
    this.owned = owned
    this.defaultEnv = env
    this.agent = new AgentClient(`unix://${directory.agentSocket}`, credentials.createInsecure(), {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
      'grpc.initial_reconnect_backoff_ms': 50,
      'grpc.max_reconnect_backoff_ms': 1000,
      // HTTP/2's default 64 KB window makes output a round trip per 64 KB; through a guest under
      // TCG that capped 10 MB of stdout at ~2 MB/s.
      'grpc-node.flow_control_window': 16 * 1024 * 1024,
    })
    control.on('event', (event: ControlEvent) => {
      if (event.event === 'exited') this.markExited(event.reason, event.consoleTail)
      else if (event.event === 'ready') this.statusSnapshot = event.status
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
  }

  /** Boots a fresh VM and resolves once its agent answers a health check. */
  static up(options?: VmOptions): Promise<VM> {
    return bootVm(
      options,
      (status, control, directory, env) => new VM(status, control, directory, env, !options?.persistent),
    )
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

  /** Milliseconds from QEMU spawn to agent ready, as measured by the supervisor. */
  get bootMs(): number | undefined {
    return this.statusSnapshot.bootMs
  }

  /** Every forwarded port: guest port → host port on 127.0.0.1. */
  get ports(): Record<number, number> {
    return Object.fromEntries(Object.entries(this.statusSnapshot.ports).map(([g, h]) => [Number(g), h]))
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
  async exec(command: string | string[], options: ExecOptions = {}): Promise<ExecResult> {
    if (this.exitError) throw this.exitError
    if (this.destroying) throw new VmExitedError(this.name, 'it was destroyed', '')
    if ((typeof command === 'string' && !command) || (Array.isArray(command) && command.length === 0)) {
      throw new InvalidOptionsError('exec needs a command: a shell string or a non-empty argv array')
    }
    const display = displayCommand(command)
    const outcome = await this.runExec(command, options)
    const result: ExecResult = {
      command: display,
      exitCode: outcome.signal ? undefined : outcome.exitCode,
      signal: outcome.signal || undefined,
      stdout: Buffer.concat(outcome.stdout).toString('utf8'),
      stderr: Buffer.concat(outcome.stderr).toString('utf8'),
      durationMs: outcome.durationMs,
      timedOut: outcome.timedOut,
      failed: outcome.timedOut || !!outcome.signal || outcome.exitCode !== 0,
    }
    if (result.failed && options.reject !== false) throw new ExecError(this.name, result)
    return result
  }

  private runExec(command: string | string[], options: ExecOptions) {
    return new Promise<{
      exitCode: number
      signal: string
      durationMs: number
      timedOut: boolean
      stdout: Buffer[]
      stderr: Buffer[]
    }>((resolve, reject) => {
      const stdout: Buffer[] = []
      const stderr: Buffer[] = []
      let settled = false
      const keep = options.buffer !== false
      const deadline = options.timeoutMs ? new Date(Date.now() + options.timeoutMs + 30_000) : undefined
      const call: ClientDuplexStream<ExecRequest, ExecResponse> = this.agent.exec(
        new Metadata(),
        deadline ? { deadline } : {},
      )
      const fail = (error: Error) => {
        if (settled) return
        settled = true
        this.pending.delete(fail)
        call.cancel()
        reject(error)
      }
      this.pending.add(fail)
      call.on('data', (response: ExecResponse) => {
        const kind = response.kind
        if (!kind) return
        if (kind.$case === 'stdout') {
          if (keep) stdout.push(kind.value)
          options.stdout?.write(kind.value)
        } else if (kind.$case === 'stderr') {
          if (keep) stderr.push(kind.value)
          options.stderr?.write(kind.value)
        } else if (kind.$case === 'exit') {
          if (settled) return
          settled = true
          this.pending.delete(fail)
          resolve({ ...kind.value, stdout, stderr })
        }
      })
      call.on('error', (error: ServiceError) => {
        if (settled) return
        void this.explainFailure(error).then(fail)
      })
      call.on('end', () => {
        if (!settled)
          void this.explainFailure(new Error('the agent ended the call without an exit status')).then(fail)
      })
      const cwd = options.cwd ?? '/'
      const start = {
        argv: Array.isArray(command) ? command : [],
        shell: typeof command === 'string' ? command : '',
        env: { ...this.defaultEnv, ...options.env },
        cwd,
        timeoutMs: options.timeoutMs ?? 0,
        stdin: options.input !== undefined,
      }
      call.write({ kind: { $case: 'start', value: start } })
      this.feedStdin(call, options.input).catch(fail)
    })
  }

  private async feedStdin(
    call: ClientDuplexStream<ExecRequest, ExecResponse>,
    input: ExecOptions['input'],
  ): Promise<void> {
    if (input !== undefined) {
      const chunks: AsyncIterable<Buffer> | Buffer[] =
        typeof input === 'string' || Buffer.isBuffer(input)
          ? split(Buffer.from(input))
          : (input as AsyncIterable<Buffer>)
      for await (const chunk of chunks) {
        const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)
        if (!call.write({ kind: { $case: 'stdin', value: data } })) {
          await new Promise<void>((resolve) => call.once('drain', resolve))
        }
      }
      call.write({ kind: { $case: 'stdinEnd', value: true } })
    }
    call.end()
  }

  /** Turns a transport error into "the VM died (console tail)" when that is what happened. */
  private async explainFailure(error: Error): Promise<Error> {
    if (this.exitError) return this.exitError
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
    return new AgentError(
      this.name,
      `agent call failed: ${(error as ServiceError).details || error.message}`,
      { cause: error },
    )
  }

  private markExited(reason: string, consoleTail: string): void {
    if (this.exitError) return
    this.exitError = new VmExitedError(this.name, reason, consoleTail)
    for (const fail of [...this.pending]) fail(this.exitError)
  }

  /** Stops the VM and removes everything it had on the host. Idempotent. */
  destroy(): Promise<void> {
    if (!this.destroying) {
      this.destroying = (async () => {
        for (const fail of [...this.pending]) fail(new VmExitedError(this.name, 'it was destroyed', ''))
        this.agent.close()
        if (!this.control.isClosed) await this.control.request({ op: 'destroy' })
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

function split(data: Buffer): Buffer[] {
  const chunks: Buffer[] = []
  for (let offset = 0; offset < data.length; offset += STDIN_CHUNK)
    chunks.push(data.subarray(offset, offset + STDIN_CHUNK))
  return chunks
}
