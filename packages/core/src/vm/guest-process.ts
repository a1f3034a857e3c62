import { PassThrough, type Readable, Writable } from 'node:stream'
import { type ClientDuplexStream, status as grpcStatus, Metadata } from '@grpc/grpc-js'
import type { AgentClient, ExecRequest, ExecResponse, ExecStart, OomKill } from '@vmctl/agent'

export interface ProcessOutcome {
  exitCode: number
  signal: string
  durationMs: number
  timedOut: boolean
  /** Processes the guest's OOM killer killed while it ran (looked for when it failed). */
  oomKills?: OomKill[]
}

const STDIN_CHUNK = 64 * 1024
/** What a stream of a process keeps while nobody reads it (what a reader that comes later gets first). */
const UNREAD_KEPT = 1024 * 1024
/** How much of each stream's end a process keeps for an error that shows it. */
const TAIL_KEPT = 4096
/** A signal call that gets no answer in this long is given up (the VM is gone or hung). */
const SIGNAL_DEADLINE_MS = 30_000

/**
 * A process running in the guest (`vm.spawn()`), and the engine under `vm.exec()`. Output arrives
 * on `stdout` and `stderr` as the process writes it, kept apart and in order. A consumer that
 * reads slowly pauses the call, which pauses the process's pipe in the guest: backpressure end to
 * end instead of buffering without bound.
 */
export class GuestProcess {
  readonly stdout: Readable = new PassThrough({ highWaterMark: 1024 * 1024 })
  readonly stderr: Readable = new PassThrough({ highWaterMark: 1024 * 1024 })
  /** Present when the process was started with `stdin: 'pipe'`; end it to close the guest's stdin. */
  readonly stdin: Writable | undefined
  /** The guest pid once the process started. */
  pid: number | undefined
  private readonly call: ClientDuplexStream<ExecRequest, ExecResponse>
  private readonly outcome: Promise<ProcessOutcome>
  private settle: { resolve: (o: ProcessOutcome) => void; reject: (e: Error) => void } | undefined
  private readonly started: Promise<number>
  private onStartFailed: (error: Error) => void = () => {}
  private stopWatch: () => void = () => {}
  private readonly noPid: boolean
  private readonly watchers = new Set<(stream: 'stdout' | 'stderr', chunk: Buffer) => void>()
  private readonly tails = {
    stdout: { chunks: [] as Buffer[], size: 0 },
    stderr: { chunks: [] as Buffer[], size: 0 },
  }

  /** @internal */
  constructor(
    private readonly agent: AgentClient,
    start: ExecStart,
    silenceBoundMs: number | undefined,
    pipeStdin: boolean,
    explain: (error: Error) => Promise<Error>,
  ) {
    // The agent enforces a command's timeout. `silenceBoundMs` guards against an agent that never
    // answers: it fails the process when nothing came from the guest for that long while the host
    // was ready to take it. It is not a deadline from the start (which it was): a command that
    // ended in time while a slow reader took its output was cut by it with a bare "deadline
    // exceeded". Time while the host holds the call back (a slow stdout/stderr target) does not count.
    this.call = agent.exec(new Metadata(), {})
    this.noPid = start.noStarted
    let silence: NodeJS.Timeout | undefined
    const stopWatch = () => clearTimeout(silence)
    const watch = () => {
      if (!silenceBoundMs || !this.settle) return
      clearTimeout(silence)
      silence = setTimeout(() => {
        if (!this.settle) return
        const cause = new Error(
          `the guest agent sent nothing for ${silenceBoundMs} ms, past the command's own timeout: ` +
            'the guest may be hung or overloaded (vm.destroy() ends it; its console log tells more)',
        )
        void explain(cause).then((e) => this.fail(e))
      }, silenceBoundMs)
    }
    this.stopWatch = stopWatch
    let onStarted: (pid: number) => void = () => {}
    this.started = new Promise((resolve, reject) => {
      onStarted = resolve
      this.onStartFailed = reject
    })
    this.started.catch(() => {})
    this.outcome = new Promise((resolve, reject) => {
      this.settle = { resolve, reject }
    })
    this.outcome.catch(() => {})
    watch()
    const deliver = (stream: Readable, chunk: Buffer) => {
      const name = stream === this.stdout ? 'stdout' : 'stderr'
      this.keepTail(name, chunk)
      for (const watcher of this.watchers) watcher(name, chunk)
      // Output nobody reads (a server spawned for a test, its log never looked at) must not stop
      // the process once the buffer is full: past UNREAD_KEPT it is dropped until a reader comes.
      // A reader (data, readable, pipe, for await), even a paused one, gets backpressure instead.
      if (neverRead(stream)) {
        if (stream.readableLength + (stream as PassThrough).writableLength < UNREAD_KEPT)
          (stream as PassThrough).write(chunk)
        return
      }
      if (!(stream as PassThrough).write(chunk)) {
        this.call.pause()
        stopWatch()
        stream.once('drain', () => {
          this.call.resume()
          watch()
        })
      }
    }
    this.call.on('data', (response: ExecResponse) => {
      watch()
      const kind = response.kind
      if (!kind) return
      if (kind.$case === 'started') {
        this.pid = kind.value.pid
        onStarted(kind.value.pid)
      } else if (kind.$case === 'stdout') deliver(this.stdout, kind.value)
      else if (kind.$case === 'stderr') deliver(this.stderr, kind.value)
      else if (kind.$case === 'exit') this.finish(kind.value)
    })
    this.call.on('error', (error: Error) => {
      if (this.settle) void explain(error).then((e) => this.fail(e))
    })
    this.call.on('end', () => {
      if (this.settle)
        void explain(new Error('the agent ended the call without an exit status')).then((e) => this.fail(e))
    })
    this.call.write({ kind: { $case: 'start', value: start } })
    if (pipeStdin) {
      const call = this.call
      this.stdin = new Writable({
        highWaterMark: STDIN_CHUNK,
        write(chunk: Buffer, _encoding, callback) {
          if (call.write({ kind: { $case: 'stdin', value: chunk } })) callback()
          else call.once('drain', () => callback())
        },
        final(callback) {
          call.write({ kind: { $case: 'stdinEnd', value: true } })
          callback()
        },
      })
      this.stdin.on('error', () => {}) // writes after the process ended are dropped
    }
    // The request side stays open until the process exits (an agent from before the Signal call
    // takes signals on it).
  }

  /** The last bytes the process wrote to each stream (up to TAIL_KEPT), read or not: for errors. */
  outputTail(): { stdout: string; stderr: string } {
    return {
      stdout: Buffer.concat(this.tails.stdout.chunks).subarray(-TAIL_KEPT).toString('utf8'),
      stderr: Buffer.concat(this.tails.stderr.chunks).subarray(-TAIL_KEPT).toString('utf8'),
    }
  }

  /** Calls `watcher` with every chunk of output from now on, read or not; returns its removal. */
  watchOutput(watcher: (stream: 'stdout' | 'stderr', chunk: Buffer) => void): () => void {
    this.watchers.add(watcher)
    return () => this.watchers.delete(watcher)
  }

  private keepTail(name: 'stdout' | 'stderr', chunk: Buffer): void {
    const tail = this.tails[name]
    tail.chunks.push(chunk.length > TAIL_KEPT ? chunk.subarray(-TAIL_KEPT) : chunk)
    tail.size += tail.chunks.at(-1)!.length
    // Chunks wholly older than the last TAIL_KEPT bytes go; many small ones are merged into one.
    while (tail.size - tail.chunks[0]!.length >= TAIL_KEPT) tail.size -= tail.chunks.shift()!.length
    if (tail.chunks.length > 64) tail.chunks = [Buffer.concat(tail.chunks)]
  }

  /** Resolves with the guest pid once the process runs. */
  whenStarted(): Promise<number> {
    return this.started
  }

  /** Resolves when the process exits (the output streams have ended by then). */
  wait(): Promise<ProcessOutcome> {
    return this.outcome
  }

  /**
   * Sends a signal to the process (its whole process group), once it runs. On a call of its own
   * (Signal, by pid), not on the exec's stream: there it would wait behind stdin data that the
   * process does not read, which the agent holds back (bounded) until it does.
   */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.settle) return
    // vm.exec() asks for no pid (the agent answers a short command in one write): the signal goes
    // on the stream, which has no stdin data queued unless `input` was given.
    if (this.noPid) {
      this.call.write({ kind: { $case: 'signal', value: signal } })
      return
    }
    void this.started.then(
      (pid) => {
        if (!this.settle) return
        const options = { deadline: new Date(Date.now() + SIGNAL_DEADLINE_MS) }
        this.agent.signal({ pid, signal }, new Metadata(), options, (error) => {
          // An agent from before the Signal call: on the stream, as it was then.
          if (error?.code === grpcStatus.UNIMPLEMENTED && this.settle)
            this.call.write({ kind: { $case: 'signal', value: signal } })
        })
      },
      () => {},
    )
  }

  /** A command on a terminal: its new size (nothing for a command on pipes, or one that ended). */
  resize(size: { rows: number; cols: number }): void {
    if (this.settle) this.call.write({ kind: { $case: 'resize', value: size } })
  }

  /** @internal Feeds `input` to stdin and closes it. */
  async feed(input: string | Buffer | Readable): Promise<void> {
    const stdin = this.stdin!
    const chunks: AsyncIterable<Buffer | string> | Buffer[] =
      typeof input === 'string' || Buffer.isBuffer(input)
        ? split(Buffer.from(input))
        : (input as AsyncIterable<Buffer | string>)
    for await (const chunk of chunks) {
      if (!this.settle || stdin.destroyed) return
      // 'close' too: a process that exits without reading destroys stdin, which never drains, and
      // the caller's input (its file descriptor) would be held open for good.
      // Both listeners go when either fires: one left per wait piled up on a large input (and Node
      // warned of a leak after 11 of them).
      if (!stdin.write(chunk))
        await new Promise<void>((resolve) => {
          const done = () => {
            stdin.off('drain', done).off('close', done)
            resolve()
          }
          stdin.on('drain', done).on('close', done)
        })
    }
    stdin.end()
  }

  /** @internal Rejects the process with `error` (the VM died, it was destroyed, the agent restarted). */
  fail(error: Error): void {
    const settle = this.settle
    if (!settle) return
    this.settle = undefined
    this.stopWatch()
    this.call.cancel()
    this.onStartFailed(error)
    this.stdin?.destroy()
    ;(this.stdout as PassThrough).end()
    ;(this.stderr as PassThrough).end()
    settle.reject(error)
  }

  private finish(outcome: ProcessOutcome): void {
    const settle = this.settle
    if (!settle) return
    this.settle = undefined
    this.stopWatch()
    this.call.end()
    this.onStartFailed(new Error('the process ended before it started'))
    this.stdin?.destroy()
    ;(this.stdout as PassThrough).end()
    ;(this.stderr as PassThrough).end()
    settle.resolve(outcome)
  }
}

function split(data: Buffer): Buffer[] {
  const chunks: Buffer[] = []
  for (let offset = 0; offset < data.length; offset += STDIN_CHUNK)
    chunks.push(data.subarray(offset, offset + STDIN_CHUNK))
  return chunks
}

/** Whether nothing ever asked for this stream's data: no listener, no pipe, never resumed or paused. */
function neverRead(stream: Readable): boolean {
  return stream.readableFlowing === null && stream.listenerCount('readable') === 0
}
