import type { Readable, Writable } from 'node:stream'
import { finished } from 'node:stream/promises'
import { InvalidOptionsError } from '../errors.js'
import { displayCommand, ExecError, type ExecResult, execResult } from './exec-result.js'
import { GuestProcess } from './guest-process.js'
import type { VmConnection } from './vm-connection.js'
import type { ExecOptions, ProcessOptions, SpawnOptions, TerminalSize, VmProcess } from './vm-types.js'
import { waitForOutput } from './wait-for-output.js'
import { waitForPort } from './wait-for-port.js'

/**
 * The agent enforces a command's timeout; this bound on the agent's silence (the command's timeout
 * plus this grace, time the host holds the call back not counted) only guards against one that
 * never answers.
 */
const AGENT_GRACE_MS = 30_000

/** What vm.exec() keeps of each output stream at most, by default (execa's figure). */
const DEFAULT_MAX_BUFFER = 100 * 1024 * 1024

/** `vm.exec()`: runs `command` to its end, output relayed as it comes and kept (unless `buffer: false`). */
export async function execIn(
  connection: VmConnection,
  command: string | string[],
  options: ExecOptions,
): Promise<ExecResult<string | Buffer>> {
  const maxBuffer = options.maxBuffer ?? DEFAULT_MAX_BUFFER
  if (!Number.isSafeInteger(maxBuffer) || maxBuffer < 1)
    throw new InvalidOptionsError(`maxBuffer is a number of bytes ≥ 1, not ${options.maxBuffer}`)
  // No pid wanted: the agent then answers a short command in one write (output, exit, status).
  const process = startProcess(connection, command, options, options.input !== undefined, false)
  const keep = options.buffer !== false
  const stdout: Buffer[] = []
  const stderr: Buffer[] = []
  // The stream that passed maxBuffer first: the command is killed, what came after is dropped.
  let capped: 'stdout' | 'stderr' | undefined
  const kept = { stdout: 0, stderr: 0 }
  const keepChunk = (name: 'stdout' | 'stderr', chunks: Buffer[], chunk: Buffer) => {
    if (capped) return
    const room = maxBuffer - kept[name]
    chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk)
    kept[name] += Math.min(chunk.length, room)
    if (chunk.length <= room) return
    capped = name
    process.kill('SIGKILL')
  }
  const relay = (source: Readable, chunks: Buffer[], target: Writable | undefined) =>
    source.on('data', (chunk: Buffer) => {
      if (keep) keepChunk(source === process.stdout ? 'stdout' : 'stderr', chunks, chunk)
      // A slow target pauses the stream, and so the call and the process in the guest; a target
      // that closes without draining (a destroyed stream) must not hold the exec for good.
      if (target && !target.destroyed && !target.write(chunk)) {
        source.pause()
        const resume = () => {
          target.off('drain', resume).off('close', resume)
          source.resume()
        }
        target.on('drain', resume).on('close', resume)
      }
    })
  relay(process.stdout, stdout, options.stdout)
  relay(process.stderr, stderr, options.stderr)
  if (options.input !== undefined) process.feed(options.input).catch((error: Error) => process.fail(error))
  const outcome = await process.wait()
  // The exit can come while output is still held by a paused relay (a slow target): the result,
  // and the target, are whole only once both streams have ended, i.e. handed on their last chunk.
  await Promise.all([finished(process.stdout), finished(process.stderr)])
  const decode = (chunks: Buffer[]): string | Buffer =>
    options.encoding === 'buffer' ? Buffer.concat(chunks) : Buffer.concat(chunks).toString('utf8')
  const result = execResult(displayCommand(command), outcome, decode(stdout), decode(stderr))
  if (capped) Object.assign(result, { failed: true, outputCapped: { stream: capped, maxBuffer } })
  if (result.failed && options.reject !== false) throw new ExecError(connection.name, result)
  return result
}

/** `vm.spawn()`: a handle on a process that runs in the background. */
export function spawnIn(
  connection: VmConnection,
  command: string | string[],
  options: SpawnOptions,
): VmProcess {
  const process = startProcess(connection, command, options, options.stdin === 'pipe' || !!options.tty, true)
  const display = displayCommand(command)
  // The result with the end of the output, for a wait that the process's end cuts short.
  const ended = () =>
    process.wait().then((outcome) => {
      const { stdout, stderr } = process.outputTail()
      return execResult(display, outcome, stdout, stderr)
    })
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    pid: process.whenStarted(),
    kill: (signal) => process.kill(signal),
    resize: (size) => {
      if (options.tty) process.resize(terminalSize(size))
    },
    wait: async () => execResult(display, await process.wait(), '', ''),
    waitForPort: (port, waitOptions = {}) => waitForPort(connection, port, waitOptions, { exited: ended() }),
    waitForOutput: async (pattern, waitOptions = {}) =>
      waitForOutput(process, connection.name, ended(), display, pattern, waitOptions),
  }
}

/** What `tty: true` gives: the classic terminal. */
const DEFAULT_TERMINAL: TerminalSize = { rows: 24, cols: 80 }

/** A terminal size checked: whole rows and columns from 1 to 65535 (the kernel's winsize fields). */
function terminalSize(size: TerminalSize): TerminalSize {
  const { rows, cols } = size ?? {}
  for (const [name, value] of [
    ['rows', rows],
    ['cols', cols],
  ] as const)
    if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 65_535)
      throw new InvalidOptionsError(
        `tty: ${name} must be a whole number from 1 to 65535, not ${JSON.stringify(value)} (tty: true is 24 rows by 80 columns)`,
      )
  return { rows, cols }
}

function startProcess(
  connection: VmConnection,
  command: string | string[],
  options: ProcessOptions,
  pipeStdin: boolean,
  wantsPid: boolean,
): GuestProcess {
  connection.assertUsable()
  if ((typeof command === 'string' && !command) || (Array.isArray(command) && command.length === 0)) {
    throw new InvalidOptionsError('exec needs a command: a shell string or a non-empty argv array')
  }
  const start = {
    argv: Array.isArray(command) ? command : [],
    shell: typeof command === 'string' ? command : '',
    env: { ...connection.env, ...options.env },
    cwd: options.cwd ?? '/',
    timeoutMs: options.timeoutMs ?? 0,
    stdin: pipeStdin,
    user: options.user ?? '',
    noStarted: !wantsPid,
    tty: options.tty ? terminalSize(options.tty === true ? DEFAULT_TERMINAL : options.tty) : undefined,
  }
  const silenceBoundMs = options.timeoutMs ? options.timeoutMs + AGENT_GRACE_MS : undefined
  return connection.track(
    new GuestProcess(connection.agent, start, silenceBoundMs, pipeStdin, (error) =>
      connection.explainFailure(error),
    ),
  )
}
