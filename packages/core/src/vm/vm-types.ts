import type { Readable, Writable } from 'node:stream'
import type { ExecResult } from './exec-result.js'

// The public option and handle types of VM's methods (exported through src/index.ts).

export interface ProcessOptions {
  /** Added to the VM's environment for this command. */
  env?: Record<string, string>
  /** Working directory in the guest. Default "/". */
  cwd?: string
  /**
   * Run as this guest user ("name", "uid", "name:group"), with the groups the guest's /etc/group
   * gives the user, as `su` does ("name:group" makes that group the primary one). Default root.
   * The groups are set when the guest's spawner starts the command (the usual path); a command
   * started without it (no spawner on the runtime disk, or a request past its bounds) gets the
   * primary group only, and the agent's log says so.
   */
  user?: string
  /** Kill the command (its whole process group, SIGKILL) after this many ms. */
  timeoutMs?: number
  /**
   * Runs the command on a pseudo-terminal in the guest, as `ssh -t` or `docker exec -t` do: its
   * stdin, stdout and stderr are the terminal (so `isatty()` holds, programs colour their output
   * and ask for passwords), its output comes as stdout (stderr stays empty), and Ctrl-C written to
   * stdin interrupts it. `true` is 24 rows by 80 columns; `vm.spawn()`'s `resize()` changes it.
   */
  tty?: boolean | TerminalSize
}

/** A terminal's size, in characters. */
export interface TerminalSize {
  rows: number
  cols: number
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
  /**
   * The most bytes of stdout, and of stderr, kept in the result: a command that writes more is
   * killed (SIGKILL, its process group) and fails saying so, with what was kept. Default 100 MiB.
   * Larger output: stream it (`stdout` with `buffer: false`, or `vm.spawn()`), or write it to a
   * guest file and `vm.pull()` it.
   */
  maxBuffer?: number
  /** "buffer": stdout and stderr as Buffers, bytes untouched. Default "utf8". */
  encoding?: 'utf8' | 'buffer'
}

export interface SpawnOptions extends ProcessOptions {
  /** "pipe": `process.stdin` is writable; otherwise the guest's stdin is /dev/null (with `tty`: always writable). */
  stdin?: 'pipe' | 'ignore'
}

export interface WaitForPortOptions {
  /** How long to wait, in ms. Default 60000. */
  timeoutMs?: number
}

export interface WaitForOutputOptions {
  /** How long to wait, in ms. Default 60000. */
  timeoutMs?: number
  /** Only this stream. Default: either. */
  stream?: 'stdout' | 'stderr'
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
  /**
   * The process's output as it writes it. A reader (`on('data')`, `pipe`, `for await`) gets every
   * byte, and a slow one pauses the process. Output nobody reads never stops it: the first MiB is
   * kept for a reader that comes later, the rest is dropped until one does.
   */
  readonly stdout: Readable
  /** As stdout. */
  readonly stderr: Readable
  readonly stdin: Writable | undefined
  /** The guest pid, once started. */
  readonly pid: Promise<number>
  /** Resolves with the result when the process exits (never rejects for a non-zero exit). */
  wait(): Promise<ExecResult>
  /** Signals the process group. Default SIGTERM. */
  kill(signal?: NodeJS.Signals): void
  /** On a terminal (`tty`): its new size; the guest's foreground process gets SIGWINCH. */
  resize(size: TerminalSize): void
  /**
   * Resolves once something in the guest listens on TCP `port` (a server this process starts).
   * If the process fails first (a non-zero exit, a signal) it rejects at once with an ExecError
   * showing the end of its output; an exit with 0 (a launcher that daemonizes) waits on. Past
   * `timeoutMs` (default 60 s): a PortWaitTimeoutError listing what does listen.
   */
  waitForPort(port: number, options?: WaitForPortOptions): Promise<void>
  /**
   * Resolves with the first text of the process's output (stdout or stderr) that matches
   * `pattern` (a string is found as it is), from its last 4 KiB before the call on, whether or not
   * the output is read elsewhere. The process ending first rejects at once with an ExecError
   * showing the end of its output; past `timeoutMs` (default 60 s), an OutputWaitTimeoutError.
   */
  waitForOutput(pattern: string | RegExp, options?: WaitForOutputOptions): Promise<string>
}
