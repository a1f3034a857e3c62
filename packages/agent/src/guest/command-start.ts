import { spawn } from 'node:child_process'
import type { ExecStart } from '../generated/vmctl/agent/v1/agent.js'
import { agentLog } from './agent-log.js'
import type { GuestRoot } from './guest-root.js'
import type { CommandUser } from './passwd.js'
import { checkCwd, notFoundMessage, planSpawn } from './spawn-plan.js'
import { type CommandProcess, type StartStage, spawnThroughSpawner } from './spawner.js'

/**
 * A request variable that picks, for this one call, how its command starts (and is not passed on
 * to the command): `nsenter` (the spawner starts busybox's nsenter, which places the command and
 * execs it: the path before the spawner placed commands itself), `child_process` (the fallback
 * when there is no spawner), `fork` (the spawner forks where it vforks), `pipes` (the agent
 * opens the command's output pipes and reads them itself, where the spawner relays them) or
 * `started-apart` (the spawner says a command started at once, never with its first output or its
 * exit). Unset: the spawner places and execs the command itself. For A/Bs in one VM
 * (scripts/bench-exec.mjs) and for tests of every path in one VM.
 */
export const EXEC_VIA_VARIABLE = 'vmctl_exec_via'

/**
 * How long the spawner may hold a command's start (its pid) back to send it with its first output
 * or its exit (spawner.ts, holdStartedMs): a short command then costs the agent one wake-up, not
 * two. `true` runs 30-90 ms in a guest under TCG from its start to its exit (docs/exec-path.md).
 * Only for vm.exec() (noStarted), where the host never sees the pid: the agent's own signals ask
 * for it at once. vm.spawn() gets its pid as soon as the process runs (hold 0): a caller waits on
 * it (`whenStarted()`, `kill()`) before it polls a server's port, and a held pid would make a silent
 * server's spawn() up to the hold slower, for ~0.05x of a short spawn's guest work.
 */
const HOLD_UNSEEN_MS = 1000
const HOLD_SEEN_MS = 0

export type CommandStart =
  | { process: CommandProcess; via: 'spawner' | 'spawner+nsenter' | 'child_process' }
  /** Nothing was started: the call fails with this (a working directory that cannot be used). */
  | { callError: string }
  /** Nothing was started: the command exits 127 with this message on its stderr. */
  | { notFound: string }

/** A user's supplementary groups were dropped by a fallback start: logged once per agent. */
let groupsDroppedLogged = false

/**
 * Starts a request's command. The spawner chroots into the root, changes to the working directory
 * and to the user, and looks a bare name up on PATH (spawner.c): the agent does no file system
 * work of its own for a start (each stat here is a round trip to the 9p share, under emulation),
 * and a failure comes back as the command's 'error' with its `stage` (see startFailure). Without a
 * spawner, busybox's nsenter does the placing (planSpawn), after the agent's own checks.
 */
export function startCommand(
  start: ExecStart,
  root: GuestRoot,
  user: CommandUser | undefined,
  env: Record<string, string>,
): CommandStart {
  const via = env[EXEC_VIA_VARIABLE]
  delete env[EXEC_VIA_VARIABLE]
  const cwd = start.cwd || '/'
  if (via === undefined || via === 'fork' || via === 'pipes' || via === 'started-apart') {
    const argv = start.argv.length > 0 ? start.argv : ['/bin/sh', '-c', start.shell]
    const place = {
      root: root.chrootPath,
      cwd,
      uid: user?.uid,
      gid: user?.gid,
      groups: user?.groups,
      fork: via === 'fork',
      pipes: via === 'pipes',
      holdStartedMs: via === 'started-apart' ? 0 : start.noStarted ? HOLD_UNSEEN_MS : HOLD_SEEN_MS,
      tty: start.tty && { rows: start.tty.rows, cols: start.tty.cols },
    }
    const spawned = spawnThroughSpawner(argv[0]!, argv.slice(1), env, start.stdin, place)
    if (spawned) return { process: spawned, via: 'spawner' }
  }
  // Only the spawner makes terminals (Node has no pseudo-terminals of its own).
  if (start.tty)
    return {
      callError:
        "a terminal (tty) needs the guest agent's spawner, which is not running here (vmctl_spawner=0, or a runtime disk without it); run the command without tty",
    }
  const cwdProblem = checkCwd(cwd, root)
  if (cwdProblem) return { callError: cwdProblem }
  // nsenter and child_process set the primary group only: say so once, not silently.
  if (user && user.groups.length > 1 && !groupsDroppedLogged) {
    groupsDroppedLogged = true
    agentLog.write(`a command as ${user.name} started without the spawner: only its primary group is set`)
  }
  const plan = planSpawn(start, root, user)
  if (plan.notFound) return { notFound: notFoundMessage(plan.notFound, env.PATH) }
  if (via !== 'child_process') {
    const spawned = spawnThroughSpawner(plan.file, plan.args, env, start.stdin)
    if (spawned) return { process: spawned, via: 'spawner+nsenter' }
  }
  const process = spawn(plan.file, plan.args, {
    cwd: '/',
    env,
    stdio: [start.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    // Its own process group, so a timeout or a signal reaches everything it started.
    detached: true,
  })
  return { process, via: 'child_process' }
}

/**
 * What a start that failed (the process never ran the command) means for the call: a call error
 * (the working directory), or a message on stderr and an exit status as a shell would give
 * (127: not found, 126: found but not runnable).
 */
export function startFailure(
  error: NodeJS.ErrnoException & { stage?: StartStage },
  start: ExecStart,
  root: GuestRoot,
  env: Record<string, string>,
): { callError: string } | { message: string; exitCode: number } {
  const name = start.argv[0] ?? '/bin/sh'
  const cwd = start.cwd || '/'
  switch (error.stage) {
    case 'cwd':
      return {
        callError: checkCwd(cwd, root) ?? `the working directory ${cwd} cannot be used: ${error.code}`,
      }
    case 'path':
      return { message: notFoundMessage(name, env.PATH), exitCode: 127 }
    case undefined:
      // child_process in the agent's own root (no nsenter): its execvp found the name nowhere.
      if (error.code === 'ENOENT' && !name.includes('/'))
        return { message: notFoundMessage(name, env.PATH), exitCode: 127 }
      break
    case 'user':
      return {
        message: `vmctl-agent: cannot run ${JSON.stringify(name)} as user ${JSON.stringify(start.user)}: ${error.code}\n`,
        exitCode: 126,
      }
    case 'root':
      return {
        message: `vmctl-agent: cannot run ${JSON.stringify(name)}: the guest's root cannot be entered (${error.code})\n`,
        exitCode: 126,
      }
  }
  const why =
    error.code === 'EACCES'
      ? 'permission denied (it is not executable, or is a directory)'
      : error.code === 'ENOENT' && (name.includes('/') || error.stage === 'exec')
        ? 'no such file, or its interpreter (#! line, ELF loader) is missing'
        : error.message
  return {
    message: `vmctl-agent: cannot run ${JSON.stringify(name)}: ${why}\n`,
    exitCode: error.code === 'ENOENT' ? 127 : 126,
  }
}

/**
 * Why a request cannot be run as it is: no process can receive a NUL byte inside an argument, a
 * variable or a path (execve's strings end at the first), and one would cut the request to the
 * spawner short. Undefined when there is none.
 */
export function nulProblem(start: ExecStart): string | undefined {
  const fix = 'Fix: pass binary data through stdin or a file'
  const index = start.argv.findIndex((arg) => arg.includes('\0'))
  if (index >= 0)
    return `argument ${index} of the command contains a NUL byte, which no process can receive. ${fix}`
  if (start.shell.includes('\0'))
    return `the shell command contains a NUL byte, which no shell can receive. ${fix}`
  for (const [name, value] of Object.entries(start.env))
    if (name.includes('\0') || value.includes('\0'))
      return `the environment variable ${JSON.stringify(name.split('\0')[0])} contains a NUL byte in its ${value.includes('\0') ? 'value' : 'name'}, which no process can receive. ${fix}`
  if (start.cwd.includes('\0') || start.user.includes('\0'))
    return `the ${start.cwd.includes('\0') ? 'working directory' : 'user'} contains a NUL byte`
  return undefined
}
