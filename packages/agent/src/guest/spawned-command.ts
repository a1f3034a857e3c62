/**
 * A command started by the spawner (spawner.c), as the exec service sees it: a ChildProcess-like
 * emitter with stdin, stdout and stderr. Its output either arrives relayed in the spawner's events
 * (OutputStream, flow-controlled by grants) or, in pipe mode, through the pipes the agent opens.
 * spawner.ts starts commands and feeds each its events.
 */
import { EventEmitter } from 'node:events'
import { Socket } from 'node:net'
import { PassThrough, Readable } from 'node:stream'

/** spawner-jobs.h's WINDOW: what one relayed stream may have in flight before the agent grants more. */
const WINDOW = 1024 * 1024

/**
 * One of a command's output streams. Relayed (the spawner reads the pipe and sends its bytes), it
 * grants the spawner more (`grant`) as the caller takes what it holds, so that what sits here and
 * in the spawner is at most WINDOW and a command writing faster than the host reads blocks on its
 * pipe; destroyed before its end, it tells the spawner to close the pipe (`onDropped`).
 */
class OutputStream extends Readable {
  private received = 0
  private granted = 0
  ended = false
  /** Pipe mode: the caller wants more (resume the pipe's socket). */
  wanted: (() => void) | undefined

  constructor(
    private readonly onTaken: (bytes: number) => void,
    private readonly onDropped: () => void,
  ) {
    super()
  }

  data(chunk: Buffer) {
    this.received += chunk.length
    this.push(chunk)
    this.grantTaken()
  }

  end() {
    this.ended = true
    this.push(null)
  }

  /**
   * Grants what the caller has taken since the last grant, once that is half a window or the
   * spawner has less than half a window left (so a stream that never writes much never costs a
   * request, and one the spawner holds back is always granted once the caller reads again: _read
   * is not called twice without a push between).
   */
  private grantTaken() {
    const taken = this.received - this.readableLength - this.granted
    if (taken <= 0 || (taken < WINDOW / 2 && this.received - this.granted < WINDOW / 2)) return
    this.granted += taken
    this.onTaken(taken)
  }

  override _read() {
    this.grantTaken()
    this.wanted?.()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void) {
    if (!this.ended) {
      this.ended = true
      this.onDropped()
    }
    callback(error)
  }
}

/**
 * A command started by the spawner, with the events and streams of a ChildProcess: 'spawn' once it
 * runs, 'error' when it could not be executed, 'exit' (code, signal), then 'close' once its
 * output streams are done too. Its stdin is a pipe (a script can open /dev/stdin), and so are its
 * stdout and stderr, which the spawner reads and relays (or, in pipe mode, the agent opens).
 */
export class SpawnedCommand extends EventEmitter {
  pid: number | undefined
  // There from the start, as a ChildProcess's are: the caller listens before the process runs.
  readonly stdin: PassThrough | null
  readonly stdout: OutputStream
  readonly stderr: OutputStream
  private exited = false
  private exitEmitted = false
  private openStreams = 2
  /** Our end of its stdin pipe, once it runs. */
  private stdinPipe: Socket | undefined
  /** A signal asked for before the process ran (a cancel or a timeout): sent once it runs. */
  private pendingSignal: NodeJS.Signals | number | undefined
  /** It never ran (failed): the spawner has no job for it, nothing to tell about its streams. */
  private neverRan = false
  /** How long it ran in the spawner's view, from its start to its reaping (exec timing laps). */
  ranMs: number | undefined

  constructor(
    stdin: boolean,
    private readonly relayed: boolean,
    private readonly tell: (request: string) => void,
    private readonly id: number,
    /** Called once: it exited and its output ended (the spawner has nothing more for it). */
    private readonly finished: () => void,
    /** On a pseudo-terminal (spawner.c's "T"): stdin goes in "I" requests, the output is stdout. */
    private readonly tty = false,
  ) {
    super()
    this.stdin = stdin ? new PassThrough() : null
    const stream = (n: number) =>
      new OutputStream(
        (bytes) => {
          if (this.relayed) tell(`A\0${id}\0${n}\0${bytes}\0`)
        },
        () => {
          // Before 'spawn' as well: the spawner may hold a command's start back while it runs
          // (the request's HOLD, spawner-jobs.c), and its pipes must be closed all the same.
          if (this.relayed && !this.neverRan) tell(`D\0${id}\0${n}\0`)
          this.checkFinished()
        },
      )
    this.stdout = stream(1)
    this.stderr = stream(2)
    for (const output of [this.stdout, this.stderr])
      output.once('close', () => {
        this.openStreams--
        this.closeIfDone()
      })
  }

  started(pid: number, pipes: { stdout?: number; stderr?: number; stdin?: number }) {
    this.pid = pid
    if (this.tty) this.startTerminalInput()
    if (this.stdin && pipes.stdin !== undefined) {
      const pipe = new Socket({ fd: pipes.stdin, readable: false, writable: true })
      // A pipe has no shutdown(): close it once the last write is out, so the command reads EOF.
      pipe.on('finish', () => pipe.destroy())
      // The command stopped reading (EPIPE): what the caller still writes goes nowhere.
      pipe.on('error', () => this.stdin?.destroy())
      this.stdin.pipe(pipe)
      this.stdinPipe = pipe
    }
    // Pipe mode (vmctl_exec_via=pipes): our own ends of the output pipes, read here.
    for (const [fd, stream] of [
      [pipes.stdout, this.stdout],
      [pipes.stderr, this.stderr],
    ] as const) {
      if (fd === undefined) continue
      const pipe = new Socket({ fd, readable: true, writable: false })
      pipe.on('data', (chunk: Buffer) => {
        stream.data(chunk)
        if (stream.readableLength >= stream.readableHighWaterMark) pipe.pause()
      })
      stream.wanted = () => pipe.resume()
      pipe.on('end', () => stream.end())
      pipe.on('error', () => stream.end())
      // The caller cuts the stream (a background child holds the pipe after the exit): close ours.
      stream.once('close', () => pipe.destroy())
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

  /**
   * A terminal's input: what the caller writes goes to the spawner hex-encoded ("I", in pieces well
   * under its request bound), and its end as the terminal's end-of-file ("E"). A terminal has one
   * output, its master: stderr ends at once.
   */
  private startTerminalInput() {
    const { id, tell } = this
    this.stdin?.on('data', (chunk: Buffer) => {
      for (let at = 0; at < chunk.length; at += 64 * 1024)
        tell(`I\0${id}\0${chunk.subarray(at, at + 64 * 1024).toString('hex')}\0`)
    })
    this.stdin?.on('end', () => tell(`E\0${id}\0`))
    this.output(2, null)
  }

  /** A command on a terminal: the terminal's new size (its foreground processes get SIGWINCH). */
  resize(rows: number, cols: number) {
    if (this.tty && !this.exited && rows > 0 && cols > 0)
      this.tell(`Z\0${this.id}\0${Math.round(rows)}\0${Math.round(cols)}\0`)
  }

  /** Relayed output (spawner.c's EV_DATA and EV_EOF). */
  output(stream: number, chunk: Buffer | null) {
    const target = stream === 1 ? this.stdout : stream === 2 ? this.stderr : undefined
    if (!target || target.ended) return
    if (chunk) target.data(chunk)
    else {
      target.end()
      this.checkFinished()
    }
  }

  /** It never ran: no stream will see data. */
  failed(error: Error) {
    this.exited = true
    this.neverRan = true
    for (const stream of [this.stdin, this.stdout, this.stderr]) stream?.destroy()
    this.emit('error', error)
  }

  /**
   * Relayed, the exit comes after the output its pipes held (spawner.c sends it so). In pipe mode
   * it goes out on the next turn of the event loop: its event can come in the same read as the
   * 'started' of this and other commands, and the exec service cuts the output 500 ms after an
   * exit; its pipes must be read once before (a batch of 100 execs lost output without this).
   */
  exit(code: number | null, signal: NodeJS.Signals | null) {
    if (this.exited) return
    this.exited = true
    // As a ChildProcess does: its stdin goes with it (else our end of the pipe, an fd, stays open
    // for the agent's life when the caller never ends its input).
    this.stdin?.destroy()
    this.stdinPipe?.destroy()
    const emit = () => {
      this.exitEmitted = true
      this.emit('exit', code, signal)
      this.closeIfDone()
    }
    this.checkFinished()
    if (this.relayed) emit()
    else setImmediate(emit)
  }

  /** The spawner is gone: relayed streams will see no more. */
  cutOff() {
    if (this.relayed) for (const stream of [this.stdout, this.stderr]) if (!stream.ended) stream.end()
  }

  private checkFinished() {
    if (this.exited && (!this.relayed || (this.stdout.ended && this.stderr.ended))) this.finished()
  }

  private closeIfDone() {
    if (this.exitEmitted && this.openStreams === 0) this.emit('close')
  }

  kill(signal?: NodeJS.Signals | number): boolean {
    if (this.exited) return false
    if (!this.pid) {
      // The spawner may be holding its start back until its first output (the spawner's HOLD, spawner-jobs.c):
      // ask for the pid now, so the signal does not wait for that.
      if (this.pendingSignal === undefined && this.relayed) this.tell(`W\0${this.id}\0`)
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
