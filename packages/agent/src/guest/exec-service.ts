import { existsSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { type ServerDuplexStream, status } from '@grpc/grpc-js'
import type { ExecExit, ExecRequest, ExecResponse, ExecStart } from '../generated/vmctl/agent/v1/agent.js'
import { nulProblem, startCommand, startFailure } from './command-start.js'
import { registerExecProcess, signalProblem } from './exec-signals.js'
import { execTiming } from './exec-timing.js'
import type { GuestRoot } from './guest-root.js'
import { monotonicMicros, oomKillsSince } from './oom-kills.js'
import { type CommandUser, lookupGroup, lookupUser, type PasswdEntry, userGroups } from './passwd.js'
import { BASE_ENV } from './spawn-plan.js'
import type { CommandProcess } from './spawner.js'

/** After a process exits, how long its pipes may stay open (held by a background child). */
const PIPE_GRACE_MS = 500

// Where a spawn plan lived before the spawner placed commands itself: the tests and index import it here.
export { checkCwd, planSpawn, type SpawnPlan } from './spawn-plan.js'

/**
 * The guest user a request names ("name", "uid", "name:group"), or an error message. A named group
 * is the primary one; the user's own groups stay supplementary (as `sudo -u name -g group`).
 */
export function resolveUser(spec: string, root: GuestRoot): CommandUser | string {
  const [name, group] = spec.split(':')
  const etc = `${root.chrootPath ?? ''}/etc`
  const entry = lookupUser(etc, name!)
  if (!entry) return `no user ${JSON.stringify(name)} in the guest's /etc/passwd`
  const gid = group ? lookupGroup(etc, group) : entry.gid
  if (gid === undefined) return `no group ${JSON.stringify(group)} in the guest's /etc/group`
  return { ...entry, gid, groups: userGroups(etc, entry.name, [gid, entry.gid]) }
}

/** The environment of a command: a login-like base for its user, then the request's variables. */
function commandEnv(start: ExecStart, user: PasswdEntry | undefined): Record<string, string> {
  const env = { ...BASE_ENV }
  if (user) Object.assign(env, { HOME: user.home, USER: user.name, LOGNAME: user.name })
  return { ...env, ...start.env }
}

/** Signals (SIGKILL unless told) what is left of an exited command's process group; false when nothing was. */
function killLeftovers(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): boolean {
  if (!pid) return false
  // The command itself has exited and was reaped. The kernel does not give its pid to another
  // process while a group of that number has members; so a process with that pid now means the
  // group is empty and the number belongs to someone else (a later command leads a group of that
  // id: every command calls setsid): nothing of ours is left to kill.
  if (existsSync(`/proc/${pid}`)) return false
  try {
    process.kill(-pid, signal)
    return true
  } catch {
    return false // ESRCH: the group is gone
  }
}

export function handleExec(call: ServerDuplexStream<ExecRequest, ExecResponse>, root: GuestRoot): void {
  let child: CommandProcess | undefined
  let finished = false
  let timedOut = false
  let timer: NodeJS.Timeout | undefined
  /** Watches the pipes after the exit; cleared when the call finishes, so no timer wakes the agent. */
  let idle: NodeJS.Timeout | undefined
  let stdinWanted = false
  let lastOutputAt = 0
  let pausedStreams = 0
  const timing = execTiming()
  let spawnedBy = ''
  let forget = () => {}
  /** Stdin is held back (call paused) until the process's stdin pipe drains. */
  let stdinHeld = false
  /** The command's process has exited (its output may still be on its way). */
  let commandExited = false

  const send = (response: ExecResponse) => (finished ? true : call.write(response))
  const fail = (code: status, details: string) => {
    if (finished) return
    // A bad request on a running command's call (a second start, a bad signal) ends the call:
    // the command may not run on unreachable, its Signal call forgotten below.
    if (child && !commandExited) killGroup('SIGKILL')
    finished = true
    forget()
    call.emit('error', { code, details })
  }
  const killGroup = (signal: NodeJS.Signals) => {
    // Not running yet (the spawner has not answered): it gets the signal once it runs.
    if (!child?.pid) return child?.kill(signal)
    // Exited: what is left is its group, if anything, and the pid may be another process's now.
    if (commandExited) return void killLeftovers(child.pid, signal)
    try {
      process.kill(-child.pid, signal)
    } catch {
      child.kill(signal)
    }
  }
  /** The call is over before the command's end (cancelled, or failed): nothing of it may stay. */
  const abandon = () => {
    if (!finished) killGroup('SIGKILL')
    finished = true
    forget()
    if (timer) clearTimeout(timer)
    clearInterval(idle)
    // A stream paused for backpressure waits for a 'drain' that this call never emits: it would
    // keep what it holds (up to the relay's window), and the spawner its pipe and its slot.
    child?.stdout?.destroy()
    child?.stderr?.destroy()
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
      const nul = nulProblem(start)
      if (nul) return fail(status.INVALID_ARGUMENT, nul)
      const user = start.user ? resolveUser(start.user, root) : undefined
      if (typeof user === 'string') return fail(status.NOT_FOUND, user)
      // A terminal always takes input (what the user types).
      stdinWanted = start.stdin || start.tty !== undefined
      const startedAt = performance.now()
      const startedAtUs = monotonicMicros()
      timing.lap('checks')
      const env = commandEnv(start, user)
      // A small static process places the command and forks it for the agent (spawner.ts);
      // child_process and busybox's nsenter when it cannot.
      const started = startCommand(start, root, user, env)
      if ('callError' in started) return fail(status.NOT_FOUND, started.callError)
      if ('notFound' in started) {
        send({ kind: { $case: 'stderr', value: Buffer.from(started.notFound) } })
        return finish({ exitCode: 127, signal: '', durationMs: 0, timedOut: false, oomKills: [] })
      }
      spawnedBy = started.via
      child = started.process
      timing.lap('spawn()')
      const proc = child
      proc.on('spawn', () => timing.lap('spawn event'))
      // A caller that does not need the pid (vm.exec()) gets none: a short command's output, exit
      // and status then leave the guest in one write, not two.
      if (!start.noStarted)
        proc.on('spawn', () => send({ kind: { $case: 'started', value: { pid: proc.pid ?? 0 } } }))
      proc.on('spawn', () => {
        if (proc.pid && !finished) forget = registerExecProcess(proc.pid, killGroup)
      })
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
        // Only start failures land here (the process never ran the command).
        const failure = startFailure(error, start, root, env)
        if ('callError' in failure) return fail(status.NOT_FOUND, failure.callError)
        send({ kind: { $case: 'stderr', value: Buffer.from(failure.message) } })
        const durationMs = performance.now() - startedAt
        finish({ exitCode: failure.exitCode, signal: '', durationMs, timedOut: false, oomKills: [] })
      })
      // The exit status goes out when the output is drained. A background child that inherited
      // stdout ("server &") would hold the pipes open forever: after exit, give the pipes a moment,
      // then stop reading them.
      let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined
      const report = () => {
        const exitCode = exited?.code ?? -1
        const signal = exited?.signal ?? ''
        // A command that failed may have been killed for memory, or lost a child to it: say so.
        const oomKills = exitCode !== 0 || signal ? oomKillsSince(startedAtUs, proc.pid ?? 0) : []
        finish({ exitCode, signal, durationMs: performance.now() - startedAt, timedOut, oomKills })
      }
      proc.on('exit', (code, signal) => {
        const ran = (proc as { ranMs?: number }).ranMs
        timing.lap(ran === undefined ? 'exit' : `exit (ran ${ran.toFixed(1)})`)
        exited = { code, signal }
        commandExited = true
        const exitedAt = performance.now()
        // Cut the pipes only once they have been quiet for a while and we are not the ones
        // holding the output back (backpressure from a slow host reader).
        idle = setInterval(() => {
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
          if (!exited) {
            timedOut = true
            return killGroup('SIGKILL')
          }
          // It exited in time and its output is still on its way to a slow reader: not a timeout.
          // What it left running in its group (a background child holding its pipes) is ended
          // here, and that is one.
          timedOut = killLeftovers(proc.pid)
        }, start.timeoutMs)
      }
    } else if (kind.$case === 'stdin') {
      const stdin = child?.stdin
      if (stdinWanted && stdin && !stdin.destroyed && !stdin.write(kind.value) && !stdinHeld) {
        // The process reads slower than the host writes (or not at all): stop taking the call's
        // messages until its pipe drains. The call's flow control (the channel's window, or
        // HTTP/2's) then holds the host's writes, so what the agent keeps for a process's stdin
        // is bounded. Signals do not wait behind it: they come on calls of their own (Signal).
        stdinHeld = true
        call.pause()
        const release = () => {
          stdin.off('drain', release)
          stdin.off('close', release)
          stdinHeld = false
          call.resume()
        }
        stdin.on('drain', release)
        stdin.on('close', release)
      }
    } else if (kind.$case === 'stdinEnd') {
      child?.stdin?.end()
    } else if (kind.$case === 'resize') {
      child?.resize?.(kind.value.rows, kind.value.cols)
    } else if (kind.$case === 'signal') {
      const problem = signalProblem(kind.value)
      if (problem) return fail(status.INVALID_ARGUMENT, problem)
      killGroup(kind.value as NodeJS.Signals)
    }
  })
  call.on('end', () => {
    if (!child) fail(status.INVALID_ARGUMENT, 'exec stream ended before a start request')
  })
  call.on('cancelled', abandon)
  call.on('error', abandon)

  function finish(exit: ExecExit) {
    if (finished) return
    if (timer) clearTimeout(timer)
    clearInterval(idle)
    send({ kind: { $case: 'exit', value: exit } })
    finished = true
    forget()
    call.end()
    timing.lap('sent')
    timing.done(spawnedBy)
  }
}
