import { fstatSync, openSync, readSync, writeSync } from 'node:fs'
import { Socket } from 'node:net'

/**
 * A supervisor started before its VM exists (`supervisor-main --await-launch`): `vmctl run` starts
 * one as its first act (packages/cli/src/early-supervisor.ts), so that Node's start-up and the
 * supervisor's loading (~0.1 s of CPU) run beside the CLI's own loading and launch preparation
 * instead of after them. VM.up() then hands it the VM's directory and the early QEMU's plan on its
 * stdin (start-vm.ts): the directory's path on the first line (JSON), the plan after it, then the end.
 * A caller that boots no VM (a usage error, --help, a killed CLI) closes the pipe with nothing
 * written, and the supervisor exits without a trace.
 */
export interface EarlyLaunch {
  /** The VM's directory (it holds launch.json). */
  path: string
  /** The early QEMU's plan (early-qemu.ts), '' when there is none. */
  plan: string
}

/** The launch in the bytes the caller wrote, or undefined when it wrote none (or died writing it). */
export function parseEarlyLaunch(text: string): EarlyLaunch | undefined {
  const newline = text.indexOf('\n')
  if (newline < 0) return undefined // nothing, or a caller killed while it wrote
  try {
    const path = JSON.parse(text.slice(0, newline)) as unknown
    if (typeof path !== 'string' || !path.startsWith('/')) return undefined
    return { path, plan: text.slice(newline + 1) }
  } catch {
    return undefined
  }
}

/**
 * The launch on stdin, read as it comes. A spare supervisor (spare-supervisor.ts) is often handed
 * its VM while Node is still starting it: a test's beforeEach runs VM.up() right after the last
 * test's destroy() started the spare. The launch is then on stdin before the supervisor has loaded
 * its modules, and the QEMU it plans is started first, its start running beside the loading
 * (supervisor-main.ts); otherwise the supervisor loads and then waits for it.
 *
 * stdin is the caller's socketpair (Node's `stdio: 'pipe'`), blocking. A net.Socket opened on it,
 * paused, makes it non-blocking (libuv's uv_pipe_open), so that `now()` reads what is there
 * without waiting, and `whole()` waits for the rest in the event loop. Its end, with or without a
 * launch, is the caller's end: a caller that dies (SIGKILL too) ends it with nothing.
 */
export class EarlyLaunchReader {
  private readonly chunks: Buffer[] = []
  private ended = false
  /** The pipe broke (not an end): what came is not trusted, as a caller killed mid-write. */
  private broken = false
  private readonly socket: Socket | undefined

  constructor() {
    let stdin: ReturnType<typeof fstatSync> | undefined
    try {
      stdin = fstatSync(0)
    } catch {}
    // Anything else (a tty, a file, nothing: a supervisor started by hand) holds no launch.
    if (!stdin?.isSocket() && !stdin?.isFIFO()) {
      this.ended = true
      return
    }
    try {
      this.socket = new Socket({ fd: 0, readable: true, writable: false, pauseOnCreate: true } as never)
      this.socket.on('error', () => {
        this.broken = true
      })
    } catch {
      this.ended = true
    }
  }

  /** The launch if the caller has finished writing it (undefined inside: it wrote none), else pending. */
  now(): { launch: EarlyLaunch | undefined } | 'pending' {
    const buffer = Buffer.alloc(16 * 1024)
    while (!this.ended && this.socket) {
      let read: number
      try {
        read = readSync(0, buffer)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return 'pending'
        this.ended = true // a broken pipe is a caller gone: no launch
        this.broken = true
        break
      }
      if (read === 0) this.ended = true
      else this.chunks.push(Buffer.from(buffer.subarray(0, read)))
    }
    return { launch: this.launch() }
  }

  /** Waits for the caller to finish writing, or to die. */
  async whole(): Promise<EarlyLaunch | undefined> {
    const arrived = this.now()
    if (arrived !== 'pending') return arrived.launch
    const socket = this.socket!
    await new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => this.chunks.push(chunk))
      socket.once('end', resolve)
      socket.once('close', resolve)
      socket.resume()
    })
    this.ended = true
    return this.launch()
  }

  private launch(): EarlyLaunch | undefined {
    this.socket?.pause()
    this.socket?.unref()
    return this.broken ? undefined : parseEarlyLaunch(Buffer.concat(this.chunks).toString('utf8'))
  }
}

/**
 * Sends this process's stdout and stderr (started as /dev/null) to `file`, as VM.up() gives a
 * supervisor it spawns for its VM: the debug log, the supervisor's own errors. Node cannot dup2
 * its descriptors; what Node itself prints on a fatal error goes to /dev/null.
 */
export function writeOutputTo(file: string): void {
  const fd = openSync(file, 'a', 0o600)
  for (const stream of [process.stdout, process.stderr]) {
    stream.write = ((chunk: string | Uint8Array, encoding?: unknown, callback?: unknown) => {
      try {
        if (typeof chunk === 'string')
          writeSync(fd, chunk, null, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
        else writeSync(fd, chunk)
      } catch {} // a full disk: the log is not worth the VM
      const done = typeof encoding === 'function' ? encoding : callback
      if (typeof done === 'function') (done as () => void)()
      return true
    }) as typeof stream.write
  }
}
