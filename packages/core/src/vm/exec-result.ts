import { VmctlError } from '../errors.js'

/** The outcome of a command run in the VM; the same fields whether it succeeded or not. */
export interface ExecResult<Output extends string | Buffer = string> {
  /** The command as given, for messages. */
  command: string
  /** The exit code; undefined when the process was killed by a signal. */
  exitCode: number | undefined
  /** The signal name (e.g. "SIGKILL") when the process was killed by one. */
  signal: string | undefined
  stdout: Output
  stderr: Output
  /** Time the process ran in the guest, in ms. */
  durationMs: number
  /** The timeout expired and the process was killed. */
  timedOut: boolean
  /** exitCode !== 0, a signal, or a timeout. */
  failed: boolean
  /**
   * Processes the guest kernel's OOM killer killed while the command ran (the command itself, or
   * a process it started), with their pid and name; empty unless the command failed.
   */
  oomKills: OomKilled[]
  /**
   * Set when the command wrote more than `maxBuffer` bytes to one stream: it was killed, and the
   * result holds the first `maxBuffer` bytes of that stream.
   */
  outputCapped?: { stream: 'stdout' | 'stderr'; maxBuffer: number }
}

/** A process the guest kernel's OOM killer killed; `cgroup`: at a memory cgroup's limit (memory.max). */
export interface OomKilled {
  pid: number
  command: string
  cgroup: boolean
}

/**
 * Thrown for a failed command unless `reject: false`. Carries every field of the result; its
 * message says what happened and shows the command's output.
 */
export class ExecError<Output extends string | Buffer = string>
  extends VmctlError
  implements ExecResult<Output>
{
  readonly command: string
  readonly exitCode: number | undefined
  readonly signal: string | undefined
  readonly stdout: Output
  readonly stderr: Output
  readonly durationMs: number
  readonly timedOut: boolean
  readonly oomKills: OomKilled[]
  readonly outputCapped: ExecResult['outputCapped']
  readonly failed = true
  /** One line: what failed and how. */
  readonly shortMessage: string

  /** `waiting`: what the caller was waiting for when the command ended ("before ..."). */
  constructor(vmName: string, result: ExecResult<Output>, waiting = '') {
    const short = `Command ${describeFailure(result)} in VM ${vmName}${waiting}: ${result.command}${outputCapped(result.outputCapped)}${outOfMemory(result.oomKills)}`
    super(
      'EXEC_FAILED',
      `${short}${outputSection('stderr', result.stderr)}${outputSection('stdout', result.stdout)}`,
    )
    this.shortMessage = short
    this.command = result.command
    this.exitCode = result.exitCode
    this.signal = result.signal
    this.stdout = result.stdout
    this.stderr = result.stderr
    this.durationMs = result.durationMs
    this.timedOut = result.timedOut
    this.oomKills = result.oomKills
    this.outputCapped = result.outputCapped
  }
}

function describeFailure(result: ExecResult<string | Buffer>): string {
  if (result.outputCapped) return 'was killed'
  if (result.timedOut) return `timed out after ${Math.round(result.durationMs)} ms`
  if (result.signal) return `was killed by ${result.signal}`
  // A process that ended before what a caller waited for (waitForOutput) may have succeeded.
  if (result.exitCode === 0) return 'exited with code 0'
  return `failed with exit code ${result.exitCode}`
}

/** Why a command whose output passed maxBuffer was killed, and the fix, or nothing. */
function outputCapped(capped: ExecResult['outputCapped']): string {
  if (!capped) return ''
  const { stream, maxBuffer } = capped
  return `; its ${stream} passed maxBuffer (${maxBuffer} bytes, which the result keeps). Fix: raise maxBuffer, stream the output (vm.exec(cmd, { stdout, buffer: false }) or vm.spawn()), or write it to a guest file and vm.pull() it`
}

/** What the guest's OOM killer did while a command ran, and the fix, or nothing. */
function outOfMemory(kills: OomKilled[] = []): string {
  if (kills.length === 0) return ''
  const named = (list: OomKilled[]) => list.map((kill) => `${kill.command} (pid ${kill.pid})`).join(', ')
  const guest = kills.filter((kill) => !kill.cgroup)
  const cgroup = kills.filter((kill) => kill.cgroup)
  const parts: string[] = []
  if (guest.length > 0)
    parts.push(
      `the guest ran out of memory while it ran, and its kernel's OOM killer killed ${named(guest)}. Fix: give the VM more memory (VM.up({ memoryMiB }), memoryMiB in vmctl.toml, vmctl --memory)`,
    )
  if (cgroup.length > 0)
    parts.push(
      `while it ran, the kernel's OOM killer killed ${named(cgroup)} at a memory cgroup's limit. Fix: raise that cgroup's memory.max`,
    )
  return `; ${parts.join('; ')}`
}

function outputSection(name: string, output: string | Buffer): string {
  const text = (typeof output === 'string' ? output : output.toString('utf8')).trimEnd()
  if (!text) return ''
  const tail = text.length > 4000 ? `…${text.slice(-4000)}` : text
  return `\n--- ${name} ---\n${tail}`
}

/** The result of a process from its exit status and collected output. */
export function execResult<Output extends string | Buffer>(
  command: string,
  outcome: {
    exitCode: number
    signal: string
    durationMs: number
    timedOut: boolean
    oomKills?: OomKilled[]
  },
  stdout: Output,
  stderr: Output,
): ExecResult<Output> {
  return {
    command,
    exitCode: outcome.signal ? undefined : outcome.exitCode,
    signal: outcome.signal || undefined,
    stdout,
    stderr,
    durationMs: outcome.durationMs,
    timedOut: outcome.timedOut,
    failed: outcome.timedOut || !!outcome.signal || outcome.exitCode !== 0,
    oomKills: (outcome.oomKills ?? []).map(({ pid, command, cgroup }) => ({ pid, command, cgroup })),
  }
}

/** Shell-quotes argv for display. */
export function displayCommand(command: string | string[]): string {
  if (typeof command === 'string') return command
  return command
    .map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`))
    .join(' ')
}
