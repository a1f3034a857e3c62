import { type ChildProcess, spawn } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { accessSync, closeSync, constants as fsConstants, openSync } from 'node:fs'
import { Socket } from 'node:net'
import { constants as osConstants } from 'node:os'
import { PassThrough } from 'node:stream'
import { agentLog } from './agent-log.js'

/** What the exec service uses of a started command: a ChildProcess, or one from the spawner. */
export type CommandProcess = Pick<ChildProcess, 'pid' | 'stdin' | 'stdout' | 'stderr' | 'kill' | 'on'>

/** Where and as whom the spawner runs a command (it does the chroot, chdir and setuid itself). */
export interface CommandPlace {
  /** The root to chroot into; undefined: the spawner's own (the initramfs). */
  root: string | undefined
  /** The working directory, inside that root. */
  cwd: string
  uid?: number
  gid?: number
  /** The user's groups (passwd.ts's userGroups), set with setgroups(); none when absent. */
  groups?: number[]
  /** fork() the command's process rather than vfork() it (one side of an A/B: vmctl_exec_via=fork). */
  fork?: boolean
}

/** Which step of a start failed, from the spawner (spawner.c's STAGE_*): the process never ran. */
export type StartStage = 'exec' | 'path' | 'root' | 'cwd' | 'user'
const STAGES: StartStage[] = ['exec', 'path', 'root', 'cwd', 'user']

/**
 * The runtime disk's spawner (native/spawner.c), next to the agent executable; vmctl_spawner
 * names another (tests), and vmctl_spawner=0 turns it off (child_process for every command: the
 * fallback, and one side of an A/B).
 */
const SPAWNER = process.env.vmctl_spawner ?? '/vmctl/vmctl-spawner'

const SIGNAL_NAMES = new Map(Object.entries(osConstants.signals).map(([name, number]) => [number, name]))

/**
 * A command started by the spawner, with the events and streams of a ChildProcess: 'spawn' once it
 * runs, 'error' when it could not be executed, 'exit' (code, signal), then 'close' once its
 * output pipes are done too. Its stdin, stdout and stderr are pipes (a script can open /dev/stdin).
 */
class SpawnedCommand extends EventEmitter {
  pid: number | undefined
  // There from the start, as a ChildProcess's are: the caller listens before the process runs.
  // The pipes, opened once it runs, are piped through them (with their backpressure).
  readonly stdin: PassThrough | null
  readonly stdout = new PassThrough()
  readonly stderr = new PassThrough()
  private exited = false
  private exitEmitted = false
  private openStreams = 2
  /** Our end of its stdin pipe, once it runs. */
  private stdinPipe: Socket | undefined
  /** A signal asked for before the process ran (a cancel or a timeout): sent once it runs. */
  private pendingSignal: NodeJS.Signals | number | undefined

  constructor(stdin: boolean) {
    super()
    this.stdin = stdin ? new PassThrough() : null
    for (const stream of [this.stdout, this.stderr])
      stream.once('close', () => {
        this.openStreams--
        this.closeIfDone()
      })
  }

  started(pid: number, pipes: { stdout: number; stderr: number; stdin?: number }) {
    this.pid = pid
    if (this.stdin && pipes.stdin !== undefined) {
      const pipe = new Socket({ fd: pipes.stdin, readable: false, writable: true })
      // A pipe has no shutdown(): close it once the last write is out, so the command reads EOF.
      pipe.on('finish', () => pipe.destroy())
      // The command stopped reading (EPIPE): what the caller still writes goes nowhere.
      pipe.on('error', () => this.stdin?.destroy())
      this.stdin.pipe(pipe)
      this.stdinPipe = pipe
    }
    for (const [fd, stream] of [
      [pipes.stdout, this.stdout],
      [pipes.stderr, this.stderr],
    ] as const) {
      const pipe = new Socket({ fd, readable: true, writable: false })
      pipe.on('error', () => stream.end())
      // The caller cuts the stream (a background child holds the pipe after the exit): close ours.
      stream.once('close', () => pipe.destroy())
      pipe.pipe(stream)
    }
    this.emit('spawn')
    if (this.pendingSignal !== undefined) {
      const signal = this.pendingSignal
      this.pendingSignal = undefined
      // As the exec service would have: to its process group, or to it alone.
      try {
        process.kill(-pid, signal)
      } catch {
        this.kill(signal)
      }
    }
  }

  /** It never ran: no stream will see data. */
  failed(error: Error) {
    this.exited = true
    for (const stream of [this.stdin, this.stdout, this.stderr]) stream?.destroy()
    this.emit('error', error)
  }

  /**
   * The exit goes out on the next turn of the event loop: its line can come in the same read as
   * the 'started' of this and other commands, and the exec service cuts the output 500 ms after
   * an exit; its pipes must be read once before (a batch of 100 execs lost output without this).
   */
  exit(code: number | null, signal: NodeJS.Signals | null) {
    if (this.exited) return
    this.exited = true
    // As a ChildProcess does: its stdin goes with it (else our end of the pipe, an fd, stays open
    // for the agent's life when the caller never ends its input).
    this.stdin?.destroy()
    this.stdinPipe?.destroy()
    setImmediate(() => {
      this.exitEmitted = true
      this.emit('exit', code, signal)
      this.closeIfDone()
    })
  }

  private closeIfDone() {
    if (this.exitEmitted && this.openStreams === 0) this.emit('close')
  }

  kill(signal?: NodeJS.Signals | number): boolean {
    if (this.exited) return false
    if (!this.pid) {
      this.pendingSignal = signal ?? 'SIGTERM'
      return true
    }
    try {
      process.kill(this.pid, signal)
      return true
    } catch {
      return false
    }
  }
}

/** The spawner process and the commands it started that have not exited yet. */
class Spawner {
  private readonly process: ChildProcess
  private readonly running = new Map<number, SpawnedCommand>()
  private nextId = 1
  private pending = ''
  alive = true

  constructor(path: string) {
    this.process = spawn(path, [], { stdio: ['pipe', 'pipe', 'inherit'] })
    this.process.stdin?.on('error', () => {})
    this.process.stdout?.setEncoding('latin1')
    this.process.stdout?.on('data', (text: string) => {
      this.pending += text
      let newline = this.pending.indexOf('\n')
      while (newline >= 0) {
        this.event(this.pending.slice(0, newline).split(' '))
        this.pending = this.pending.slice(newline + 1)
        newline = this.pending.indexOf('\n')
      }
    })
    this.process.on('error', (error) => this.gone(error.message))
    this.process.on('exit', (code, signal) => this.gone(signal ?? `status ${code}`))
  }

  start(
    file: string,
    args: string[],
    env: Record<string, string>,
    stdin: boolean,
    place: CommandPlace,
  ): SpawnedCommand {
    const id = this.nextId++
    const command = new SpawnedCommand(stdin)
    this.running.set(id, command)
    const variables = Object.entries(env).map(([name, value]) => `${name}=${value}`)
    const fields = [place.fork ? 'F' : 'S', String(id), stdin ? '1' : '0', place.root ?? '', place.cwd]
    fields.push(
      String(place.uid ?? -1),
      // The GID field carries the groups after it ("GID,GROUP,..."): an older spawner reads the GID.
      [place.gid ?? -1, ...(place.groups ?? [])].join(','),
      file,
      String(args.length + 1),
      file,
      ...args,
    )
    fields.push(String(variables.length), ...variables)
    this.process.stdin?.write(`${fields.join('\0')}\0`)
    return command
  }

  private event([kind, idText, ...rest]: string[]) {
    const id = Number(idText)
    const command = this.running.get(id)
    if (!command) return
    const numbers = rest.map(Number)
    if (kind === 'started') {
      const [pid, stdout, stderr, stdin] = numbers as [number, number, number, number]
      // Our own ends of the command's pipes, opened through the spawner's: no fd passing in Node.
      const open = (fd: number, flags: number) =>
        openSync(`/proc/${this.process.pid}/fd/${fd}`, flags | fsConstants.O_NONBLOCK)
      let pipes: { stdout: number; stderr: number; stdin?: number } | undefined
      try {
        pipes = { stdout: open(stdout, fsConstants.O_RDONLY), stderr: open(stderr, fsConstants.O_RDONLY) }
        if (stdin >= 0) pipes.stdin = open(stdin, fsConstants.O_WRONLY)
      } catch (error) {
        for (const fd of [pipes?.stdout, pipes?.stderr]) if (fd !== undefined) closeSync(fd)
        agentLog.write(`spawner: cannot open a command's pipes (${(error as Error).message})`)
        process.kill(pid, 'SIGKILL')
        pipes = undefined
      }
      this.process.stdin?.write(`C\0${id}\0`)
      if (pipes) command.started(pid, pipes)
      else command.failed(Object.assign(new Error('cannot open its pipes'), { code: 'EIO' }))
    } else if (kind === 'failed') {
      this.running.delete(id)
      const errno = numbers[0] ?? 0
      const stage = STAGES[numbers[1] ?? 0] ?? 'exec'
      const name = Object.entries(osConstants.errno).find(([, n]) => n === errno)?.[0] ?? 'EIO'
      command.failed(Object.assign(new Error(`spawn ${name}`), { code: name, errno: -errno, stage }))
    } else if (kind === 'exit') {
      this.running.delete(id)
      const [code, signal] = numbers as [number, number]
      command.exit(
        signal ? null : code,
        signal ? ((SIGNAL_NAMES.get(signal) as NodeJS.Signals) ?? null) : null,
      )
    }
  }

  /** Commands it started and did not see end: their status is lost; their output is not. */
  private gone(why: string) {
    if (!this.alive) return
    this.alive = false
    agentLog.write(`spawner exited (${why}); commands start through child_process from now on`)
    for (const command of this.running.values()) {
      if (command.pid) command.exit(null, null)
      else command.failed(Object.assign(new Error('the spawner exited before it ran'), { code: 'EIO' }))
    }
    this.running.clear()
  }
}

let spawner: Spawner | undefined

/** spawner.c's bounds: MAX_FIELDS fields and MAX_REQUEST bytes in one request. */
const MAX_FIELDS = 8192
const MAX_REQUEST = 1 << 20

/**
 * Whether a command can go to the spawner as one request: its fields are NUL-terminated, so a NUL
 * inside one would frame the rest as other requests (the exec service refuses those anyway), and
 * one over spawner.c's bounds would make it exit. Those that do not fit go through child_process.
 */
function fitsARequest(
  file: string,
  args: string[],
  env: Record<string, string>,
  place: CommandPlace,
): boolean {
  let fields = 12 + args.length
  let bytes =
    64 + 2 * Buffer.byteLength(file) + Buffer.byteLength(place.cwd) + Buffer.byteLength(place.root ?? '')
  bytes += 11 * (place.groups?.length ?? 0)
  if (file.includes('\0') || place.cwd.includes('\0') || place.root?.includes('\0')) return false
  for (const arg of args) {
    if (arg.includes('\0')) return false
    bytes += Buffer.byteLength(arg) + 1
  }
  for (const name in env) {
    const value = env[name]!
    if (name.includes('\0') || value.includes('\0')) return false
    bytes += Buffer.byteLength(name) + Buffer.byteLength(value) + 2
    fields++
  }
  return fields < MAX_FIELDS && bytes < MAX_REQUEST - 1024
}

/**
 * Starts a command through the spawner (started on first use, that is by the warm-up before a
 * template is saved), or returns undefined when there is none (not on this disk, turned off, or
 * exited): the caller then uses child_process. A start that fails emits 'error' with the errno's
 * name as `code` and the step as `stage` (StartStage).
 */
export function spawnThroughSpawner(
  file: string,
  args: string[],
  env: Record<string, string>,
  stdin: boolean,
  place: CommandPlace = { root: undefined, cwd: '/' },
): CommandProcess | undefined {
  if (SPAWNER === '0') return undefined
  if (!spawner) {
    // One that exists but cannot run would take the first command with it.
    try {
      accessSync(SPAWNER, fsConstants.X_OK)
    } catch {
      return undefined
    }
    spawner = new Spawner(SPAWNER)
  }
  if (!spawner.alive || !fitsARequest(file, args, env, place)) return undefined
  return spawner.start(file, args, env, stdin, place) as unknown as CommandProcess
}
