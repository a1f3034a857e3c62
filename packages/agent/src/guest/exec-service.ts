import { spawn } from 'node:child_process'
import { statSync } from 'node:fs'
import { constants as osConstants } from 'node:os'
import { performance } from 'node:perf_hooks'
import { type ServerDuplexStream, status } from '@grpc/grpc-js'
import type { ExecRequest, ExecResponse, ExecStart } from '../generated/vmctl/agent/v1/agent.js'
import { findInRootPath } from './command-path.js'
import { execTiming } from './exec-timing.js'
import type { GuestRoot } from './guest-root.js'
import { lookupGroup, lookupUser, type PasswdEntry } from './passwd.js'
import { resolveInRoot } from './root-paths.js'
import { type CommandProcess, spawnThroughSpawner } from './spawner.js'

/** After a process exits, how long its pipes may stay open (held by a background child). */
const PIPE_GRACE_MS = 500

const BASE_ENV: Record<string, string> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  USER: 'root',
  LOGNAME: 'root',
  LANG: 'C.UTF-8',
  TERM: 'dumb',
}

export interface SpawnPlan {
  file: string
  args: string[]
  /** The bare command name that is in none of the root's PATH directories (nothing to run). */
  notFound?: string
}

/**
 * How a start request becomes a spawn. Node can neither chroot nor change user after a chroot;
 * busybox's nsenter does root, working directory and uid/gid in one exec (-F: no extra fork).
 * Its -w is opened before the chroot, so it gets the host-side path of the directory.
 */
export function planSpawn(
  start: ExecStart,
  root: GuestRoot,
  user?: PasswdEntry & { gid: number },
): SpawnPlan {
  let argv = start.argv.length > 0 ? start.argv : ['/bin/sh', '-c', start.shell]
  const cwd = start.cwd || '/'
  if (!root.chrootPath && cwd === '/' && !user) return { file: argv[0]!, args: argv.slice(1) }
  // nsenter would run its own applet for a bare name: give it the root's binary by its path.
  if (!argv[0]!.includes('/')) {
    const found = findInRootPath(argv[0]!, start.env.PATH ?? BASE_ENV.PATH!, root.chrootPath)
    if (!found) return { file: argv[0]!, args: argv.slice(1), notFound: argv[0]! }
    argv = [found, ...argv.slice(1)]
  }
  const args = ['nsenter', '-F']
  if (root.chrootPath) args.push(`-r${root.chrootPath}`)
  args.push(`-w${resolveInRoot(root.chrootPath, cwd)}`)
  if (user) args.push('-S', String(user.uid), '-G', String(user.gid))
  return { file: root.busybox, args: [...args, ...argv] }
}

/** The guest user a request names ("name", "uid", "name:group"), or an error message. */
export function resolveUser(spec: string, root: GuestRoot): (PasswdEntry & { gid: number }) | string {
  const [name, group] = spec.split(':')
  const etc = `${root.chrootPath ?? ''}/etc`
  const entry = lookupUser(etc, name!)
  if (!entry) return `no user ${JSON.stringify(name)} in the guest's /etc/passwd`
  if (!group) return entry
  const gid = lookupGroup(etc, group)
  return gid === undefined ? `no group ${JSON.stringify(group)} in the guest's /etc/group` : { ...entry, gid }
}

/**
 * Why a working directory cannot be used, in the guest's own terms, or undefined. Checked here so
 * the caller gets a call error naming the directory, not nsenter's message with the agent's
 * internal path and an exit status that reads as the command's own.
 */
export function checkCwd(cwd: string, root: GuestRoot): string | undefined {
  let stat: ReturnType<typeof statSync>
  try {
    stat = statSync(resolveInRoot(root.chrootPath, cwd))
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR')
      return `the working directory ${cwd} does not exist in the guest. Fix: create it first (mkdir -p ${cwd}) or pass another cwd`
    return `the working directory ${cwd} cannot be used: ${(error as Error).message.split(',')[0]}`
  }
  if (!stat?.isDirectory())
    return `the working directory ${cwd} is not a directory in the guest. Fix: pass a directory as cwd`
  return undefined
}

/** The environment of a command: a login-like base for its user, then the request's variables. */
function commandEnv(start: ExecStart, user: PasswdEntry | undefined): Record<string, string> {
  const env = { ...BASE_ENV }
  if (user) Object.assign(env, { HOME: user.home, USER: user.name, LOGNAME: user.name })
  return { ...env, ...start.env }
}

export function handleExec(call: ServerDuplexStream<ExecRequest, ExecResponse>, root: GuestRoot): void {
  let child: CommandProcess | undefined
  let finished = false
  let timedOut = false
  let timer: NodeJS.Timeout | undefined
  let stdinWanted = false
  let lastOutputAt = 0
  let pausedStreams = 0
  const timing = execTiming()
  let spawnedBy = ''

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
      timing.lap('request')
      const start = kind.value
      if (start.argv.length === 0 && !start.shell)
        return fail(status.INVALID_ARGUMENT, 'exec needs argv or shell')
      const user = start.user ? resolveUser(start.user, root) : undefined
      if (typeof user === 'string') return fail(status.NOT_FOUND, user)
      const cwdProblem = checkCwd(start.cwd || '/', root)
      if (cwdProblem) return fail(status.NOT_FOUND, cwdProblem)
      stdinWanted = start.stdin
      const plan = planSpawn(start, root, user)
      if (plan.notFound) {
        const path = start.env.PATH ?? BASE_ENV.PATH
        const message = `vmctl-agent: cannot run ${JSON.stringify(plan.notFound)}: not found in the guest's PATH (${path}). Fix: install it in the guest or pass its absolute path\n`
        send({ kind: { $case: 'stderr', value: Buffer.from(message) } })
        return finish({ exitCode: 127, signal: '', durationMs: 0, timedOut: false })
      }
      const startedAt = performance.now()
      timing.lap('checks')
      const env = commandEnv(start, user)
      // A small static process forks for the agent (spawner.ts); child_process when it cannot.
      const spawned = spawnThroughSpawner(plan.file, plan.args, env, start.stdin)
      spawnedBy = spawned ? 'spawner' : 'child_process'
      child =
        spawned ??
        spawn(plan.file, plan.args, {
          cwd: '/',
          env,
          stdio: [start.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
          // Its own process group, so a timeout or a signal reaches everything it started.
          detached: true,
        })
      timing.lap('spawn()')
      const proc = child
      proc.on('spawn', () => timing.lap('spawn event'))
      proc.on('spawn', () => send({ kind: { $case: 'started', value: { pid: proc.pid ?? 0 } } }))
      for (const [stream, tag] of [
        [proc.stdout, 'stdout'],
        [proc.stderr, 'stderr'],
      ] as const) {
        stream?.on('data', (chunk: Buffer) => {
          lastOutputAt = performance.now()
          const ok = send({
            kind: tag === 'stdout' ? { $case: 'stdout', value: chunk } : { $case: 'stderr', value: chunk },
          })
          if (!ok) {
            // The host reads slower than the process writes: stop reading its pipe until the
            // call drains, so the process blocks instead of the agent buffering without bound.
            stream.pause()
            pausedStreams++
            call.once('drain', () => {
              pausedStreams--
              stream.resume()
            })
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
      // The exit status goes out when the output is drained. A background child that inherited
      // stdout ("server &") would hold the pipes open forever: after exit, give the pipes a moment,
      // then stop reading them.
      let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined
      const report = () =>
        finish({
          exitCode: exited?.code ?? -1,
          signal: exited?.signal ?? '',
          durationMs: performance.now() - startedAt,
          timedOut,
        })
      proc.on('exit', (code, signal) => {
        timing.lap('exit')
        exited = { code, signal }
        const exitedAt = performance.now()
        // Cut the pipes only once they have been quiet for a while and we are not the ones
        // holding the output back (backpressure from a slow host reader).
        const idle = setInterval(() => {
          if (finished) return clearInterval(idle)
          if (pausedStreams > 0 || performance.now() - Math.max(lastOutputAt, exitedAt) < PIPE_GRACE_MS)
            return
          clearInterval(idle)
          proc.stdout?.destroy()
          proc.stderr?.destroy()
          report()
        }, 50)
      })
      proc.on('close', () => {
        if (exited) report()
      })
      if (start.timeoutMs > 0) {
        timer = setTimeout(() => {
          timedOut = true
          killGroup('SIGKILL')
        }, start.timeoutMs)
      }
    } else if (kind.$case === 'stdin') {
      if (stdinWanted && child?.stdin && !child.stdin.destroyed) {
        // Not call.pause(): that would also hold back a signal for a process that stopped
        // reading stdin. HTTP/2 flow control bounds what can pile up here.
        child.stdin.write(kind.value)
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
    timing.lap('sent')
    timing.done(spawnedBy)
  }
}
