import { type ChildProcess, spawn } from 'node:child_process'
import { accessSync, closeSync, constants as fsConstants, openSync } from 'node:fs'
import { constants as osConstants } from 'node:os'
import { agentLog } from './agent-log.js'
import { SpawnedCommand } from './spawned-command.js'

/** What the exec service uses of a started command: a ChildProcess, or one from the spawner. */
export type CommandProcess = Pick<ChildProcess, 'pid' | 'stdin' | 'stdout' | 'stderr' | 'kill' | 'on'> & {
  /** A command on a terminal: its new size (SpawnedCommand.resize). */
  resize?: (rows: number, cols: number) => void
}

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
  /** The agent opens the output pipes itself instead of the spawner relaying them (one side of an
   * A/B: vmctl_exec_via=pipes, the path before the relay). */
  pipes?: boolean
  /**
   * How long (ms) the spawner may hold the news that the command started (its pid) to send it with
   * the command's first output or its exit, in one write: a short command then wakes the agent
   * once, not twice. Only without stdin (the agent opens the stdin pipe once it started). A kill
   * before the pid ends the wait. 0 or absent: at once.
   */
  holdStartedMs?: number
  /**
   * Runs the command on a pseudo-terminal of this size (spawner.c's "T"): its controlling terminal,
   * stdin, stdout and stderr; its output comes as stdout, and the command's stdin writes to it.
   */
  tty?: { rows: number; cols: number }
}

/** Which step of a start failed, from the spawner (spawner-child.h's STAGE_*): the process never ran. */
export type StartStage = 'exec' | 'path' | 'root' | 'cwd' | 'user'
const STAGES: StartStage[] = ['exec', 'path', 'root', 'cwd', 'user']

/**
 * The runtime disk's spawner (native/spawner.c), next to the agent executable; vmctl_spawner
 * names another (tests), and vmctl_spawner=0 turns it off (child_process for every command: the
 * fallback, and one side of an A/B).
 */
const SPAWNER = process.env.vmctl_spawner ?? '/vmctl/vmctl-spawner'

const SIGNAL_NAMES = new Map(Object.entries(osConstants.signals).map(([name, number]) => [number, name]))

/** spawner.c's events (enum event), each six 32-bit numbers, EV_DATA followed by its bytes. */
const EV_STARTED = 1
const EV_FAILED = 2
const EV_EXIT = 3
const EV_DATA = 4
const EV_EOF = 5
const EV_SLOTS = 6
const EVENT_BYTES = 24

/** The spawner process and the commands it started that have not exited yet. */
class Spawner {
  private readonly process: ChildProcess
  /** Commands by id, from the start request until their output has ended and they exited. */
  private readonly running = new Map<number, SpawnedCommand>()
  private nextId = 1
  /** The start of an event that has not fully come yet, and how many bytes make it whole. */
  private pending: Buffer[] = []
  private pendingBytes = 0
  private needed = EVENT_BYTES
  /** Diagnostics ("U" requests) waiting for their EV_SLOTS, by id. */
  private readonly slotQueries = new Map<number, (slots: SpawnerSlots | undefined) => void>()
  alive = true

  constructor(path: string) {
    this.process = spawn(path, [], { stdio: ['pipe', 'pipe', 'inherit'] })
    this.process.stdin?.on('error', () => {})
    this.process.stdout?.on('data', (chunk: Buffer) => this.read(chunk))
    this.process.on('error', (error) => this.gone(error.message))
    this.process.on('exit', (code, signal) => this.gone(signal ?? `status ${code}`))
  }

  private tell(request: string) {
    this.process.stdin?.write(request)
  }

  start(
    file: string,
    args: string[],
    env: Record<string, string>,
    stdin: boolean,
    place: CommandPlace,
  ): SpawnedCommand {
    const id = this.nextId++
    const tty = place.tty !== undefined
    const command = new SpawnedCommand(
      stdin || tty,
      !place.pipes || tty,
      (request) => this.tell(request),
      id,
      () => this.running.delete(id),
      tty,
    )
    this.running.set(id, command)
    const variables = Object.entries(env).map(([name, value]) => `${name}=${value}`)
    const kind = place.tty ? 'T' : place.fork ? 'F' : place.pipes ? 'P' : 'S'
    const hold = String(Math.max(0, Math.round(place.holdStartedMs ?? 0)))
    // A terminal's size stands where a pipe start says whether it has stdin (it always has).
    const input = place.tty ? `${place.tty.rows}x${place.tty.cols}` : stdin ? '1' : '0'
    const fields = [kind, String(id), input, hold, place.root ?? '', place.cwd]
    fields.push(
      String(place.uid ?? -1),
      // The GID field carries the groups after it ("GID,GROUP,...": group-list.c).
      [place.gid ?? -1, ...(place.groups ?? [])].join(','),
      file,
      String(args.length + 1),
      file,
      ...args,
    )
    fields.push(String(variables.length), ...variables)
    this.tell(`${fields.join('\0')}\0`)
    return command
  }

  /** How many of its job slots are taken (spawner.c's "U" request); undefined if it exits first. */
  slots(): Promise<SpawnerSlots | undefined> {
    const id = this.nextId++
    return new Promise((resolve) => {
      this.slotQueries.set(id, resolve)
      this.tell(`U\0${id}\0`)
    })
  }

  /**
   * Splits the spawner's output into events. A read may end inside one (a data event carries up
   * to 256 KiB, a read takes 64 KiB): the pieces wait, uncopied, until the event is whole, and are
   * joined once (joining at each read copied a large event several times over).
   */
  private read(chunk: Buffer) {
    this.pending.push(chunk)
    this.pendingBytes += chunk.length
    if (this.pendingBytes < this.needed) return
    let buffer = this.pending.length === 1 ? chunk : Buffer.concat(this.pending, this.pendingBytes)
    let at = 0
    this.needed = EVENT_BYTES
    while (buffer.length - at >= EVENT_BYTES) {
      const kind = buffer.readInt32LE(at)
      const numbers = [4, 8, 12, 16, 20].map((offset) => buffer.readInt32LE(at + offset)) as [
        number,
        number,
        number,
        number,
        number,
      ]
      if (kind === EV_DATA) {
        const size = numbers[2]
        if (buffer.length - at < EVENT_BYTES + size) {
          this.needed = EVENT_BYTES + size
          break
        }
        const data = buffer.subarray(at + EVENT_BYTES, at + EVENT_BYTES + size)
        this.running.get(numbers[0])?.output(numbers[1], data)
        at += EVENT_BYTES + size
        continue
      }
      at += EVENT_BYTES
      this.event(kind, ...numbers)
    }
    buffer = buffer.subarray(at)
    this.pending = buffer.length ? [buffer] : []
    this.pendingBytes = buffer.length
  }

  private event(kind: number, id: number, a: number, b: number, c: number, d: number) {
    if (kind === EV_SLOTS) {
      this.slotQueries.get(id)?.({ inUse: a, table: b })
      this.slotQueries.delete(id)
      return
    }
    const command = this.running.get(id)
    if (!command) return
    if (kind === EV_STARTED) {
      // Our own ends of the command's pipes (stdin's, and in pipe mode the output's), opened
      // through the spawner's: no fd passing in Node.
      const open = (fd: number, flags: number) =>
        openSync(`/proc/${this.process.pid}/fd/${fd}`, flags | fsConstants.O_NONBLOCK)
      const pipes: { stdout?: number; stderr?: number; stdin?: number } = {}
      const wanted = [
        ['stdin', b, fsConstants.O_WRONLY],
        ['stdout', c, fsConstants.O_RDONLY],
        ['stderr', d, fsConstants.O_RDONLY],
      ] as const
      let opened = true
      try {
        for (const [name, fd, flags] of wanted) if (fd >= 0) pipes[name] = open(fd, flags)
      } catch (error) {
        for (const fd of Object.values(pipes)) closeSync(fd)
        agentLog.write(`spawner: cannot open a command's pipes (${(error as Error).message})`)
        process.kill(a, 'SIGKILL')
        opened = false
      }
      if (wanted.some(([, fd]) => fd >= 0)) this.tell(`C\0${id}\0`)
      if (opened) command.started(a, pipes)
      else command.failed(Object.assign(new Error('cannot open its pipes'), { code: 'EIO' }))
    } else if (kind === EV_FAILED) {
      this.running.delete(id)
      const stage = STAGES[b] ?? 'exec'
      const name = Object.entries(osConstants.errno).find(([, n]) => n === a)?.[0] ?? 'EIO'
      command.failed(Object.assign(new Error(`spawn ${name}`), { code: name, errno: -a, stage }))
    } else if (kind === EV_EOF) {
      command.output(a, null)
    } else if (kind === EV_EXIT) {
      command.ranMs = c / 1000
      command.exit(b ? null : a, b ? ((SIGNAL_NAMES.get(b) as NodeJS.Signals) ?? null) : null)
    }
  }

  /** Commands it started and did not see end: their status is lost; their output is not. */
  private gone(why: string) {
    if (!this.alive) return
    this.alive = false
    agentLog.write(`spawner exited (${why}); commands start through child_process from now on`)
    for (const command of this.running.values()) {
      if (command.pid) {
        command.cutOff()
        command.exit(null, null)
      } else command.failed(Object.assign(new Error('the spawner exited before it ran'), { code: 'EIO' }))
    }
    this.running.clear()
    for (const answer of this.slotQueries.values()) answer(undefined)
    this.slotQueries.clear()
  }
}

let spawner: Spawner | undefined

/** Diagnostics: the spawner's job slots taken (commands running, or ended with an end still open). */
export interface SpawnerSlots {
  inUse: number
  table: number
}

/** The running spawner's slots (spawner.c's "U"), or undefined when none runs. */
export async function spawnerSlots(): Promise<SpawnerSlots | undefined> {
  return spawner?.alive ? spawner.slots() : undefined
}

/** spawner-requests.c's bounds: MAX_FIELDS fields and MAX_REQUEST bytes in one request. */
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
  let fields = 13 + args.length
  let bytes =
    80 + 2 * Buffer.byteLength(file) + Buffer.byteLength(place.cwd) + Buffer.byteLength(place.root ?? '')
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
