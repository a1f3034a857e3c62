import { type ChildProcess, spawn } from 'node:child_process'
import { constants as osConstants } from 'node:os'
import { performance } from 'node:perf_hooks'
import { type ServerDuplexStream, status } from '@grpc/grpc-js'
import type { ExecRequest, ExecResponse, ExecStart } from '../generated/vmctl/agent/v1/agent.js'
import type { GuestRoot } from './guest-root.js'

const BASE_ENV: Record<string, string> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  USER: 'root',
  LOGNAME: 'root',
  LANG: 'C.UTF-8',
  TERM: 'dumb',
}

/** How a start request becomes a spawn: plain argv in the agent's root, or through chroot. */
export function planSpawn(start: ExecStart, root: GuestRoot): { file: string; args: string[]; cwd: string } {
  const argv = start.argv.length > 0 ? start.argv : ['/bin/sh', '-c', start.shell]
  const cwd = start.cwd || '/'
  if (!root.chrootPath) return { file: argv[0]!, args: argv.slice(1), cwd }
  // Node cannot chroot, and the agent runs in the initramfs so that it is up before the root is
  // mounted; commands enter the guest's root through busybox's chroot applet.
  if (cwd === '/') return { file: root.busybox, args: ['chroot', root.chrootPath, ...argv], cwd: '/' }
  return {
    file: root.busybox,
    args: ['chroot', root.chrootPath, '/bin/sh', '-c', 'cd -- "$0" || exit 126; exec "$@"', cwd, ...argv],
    cwd: '/',
  }
}

export function handleExec(call: ServerDuplexStream<ExecRequest, ExecResponse>, root: GuestRoot): void {
  let child: ChildProcess | undefined
  let finished = false
  let timedOut = false
  let timer: NodeJS.Timeout | undefined
  let stdinWanted = false

  const send = (response: ExecResponse) => (finished ? true : call.write(response))
  const fail = (code: status, details: string) => {
    if (finished) return
    finished = true
    call.emit('error', { code, details })
  }
  const killGroup = (signal: NodeJS.Signals) => {
    if (!child?.pid) return
    try {
      process.kill(-child.pid, signal)
    } catch {
      child.kill(signal)
    }
  }

  call.on('data', (request: ExecRequest) => {
    const kind = request.kind
    if (!kind) return
    if (kind.$case === 'start') {
      if (child) return fail(status.FAILED_PRECONDITION, 'exec already started')
      const start = kind.value
      if (start.argv.length === 0 && !start.shell)
        return fail(status.INVALID_ARGUMENT, 'exec needs argv or shell')
      stdinWanted = start.stdin
      const plan = planSpawn(start, root)
      const startedAt = performance.now()
      child = spawn(plan.file, plan.args, {
        cwd: plan.cwd,
        env: { ...BASE_ENV, ...start.env },
        stdio: [start.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
        // Its own process group, so a timeout or a signal reaches everything it started.
        detached: true,
      })
      const proc = child
      proc.on('spawn', () => send({ kind: { $case: 'started', value: { pid: proc.pid ?? 0 } } }))
      for (const [stream, tag] of [
        [proc.stdout, 'stdout'],
        [proc.stderr, 'stderr'],
      ] as const) {
        stream?.on('data', (chunk: Buffer) => {
          const ok = send({
            kind: tag === 'stdout' ? { $case: 'stdout', value: chunk } : { $case: 'stderr', value: chunk },
          })
          if (!ok) {
            // The host reads slower than the process writes: stop reading its pipe until the
            // call drains, so the process blocks instead of the agent buffering without bound.
            stream.pause()
            call.once('drain', () => stream.resume())
          }
        })
      }
      proc.stdin?.on('error', () => {})
      proc.on('error', (error: NodeJS.ErrnoException) => {
        // Only spawn failures land here (the process never ran).
        const message = `vmctl-agent: cannot run ${JSON.stringify(start.argv[0] ?? '/bin/sh')}: ${error.message}\n`
        send({ kind: { $case: 'stderr', value: Buffer.from(message) } })
        const code = error.code === 'ENOENT' ? 127 : 126
        finish({ exitCode: code, signal: '', durationMs: performance.now() - startedAt, timedOut: false })
      })
      proc.on('close', (code, signal) => {
        finish({
          exitCode: code ?? -1,
          signal: signal ?? '',
          durationMs: performance.now() - startedAt,
          timedOut,
        })
      })
      if (start.timeoutMs > 0) {
        timer = setTimeout(() => {
          timedOut = true
          killGroup('SIGKILL')
        }, start.timeoutMs)
      }
    } else if (kind.$case === 'stdin') {
      if (stdinWanted && child?.stdin && !child.stdin.destroyed) {
        if (!child.stdin.write(kind.value)) {
          call.pause()
          child.stdin.once('drain', () => call.resume())
        }
      }
    } else if (kind.$case === 'stdinEnd') {
      child?.stdin?.end()
    } else if (kind.$case === 'signal') {
      const name = kind.value as NodeJS.Signals
      if (!(name in osConstants.signals)) return fail(status.INVALID_ARGUMENT, `unknown signal ${kind.value}`)
      killGroup(name)
    }
  })
  call.on('end', () => {
    if (!child) fail(status.INVALID_ARGUMENT, 'exec stream ended before a start request')
  })
  call.on('cancelled', () => {
    if (!finished) killGroup('SIGKILL')
    finished = true
    if (timer) clearTimeout(timer)
  })
  call.on('error', () => {
    if (!finished) killGroup('SIGKILL')
  })

  function finish(exit: { exitCode: number; signal: string; durationMs: number; timedOut: boolean }) {
    if (finished) return
    if (timer) clearTimeout(timer)
    send({ kind: { $case: 'exit', value: exit } })
    finished = true
    call.end()
  }
}
