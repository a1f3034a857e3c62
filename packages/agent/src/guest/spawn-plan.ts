import { statSync } from 'node:fs'
import type { ExecStart } from '../generated/vmctl/agent/v1/agent.js'
import { findInRootPath } from './command-path.js'
import type { GuestRoot } from './guest-root.js'
import type { PasswdEntry } from './passwd.js'
import { resolveInRoot } from './root-paths.js'

export const BASE_ENV: Record<string, string> = {
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
 * How a start request becomes a spawn when the spawner cannot place the command itself (it runs
 * through child_process, or `vmctl_exec_via=nsenter` asks for this path). Node can neither chroot
 * nor change user after a chroot; busybox's nsenter does root, working directory and uid/gid in
 * one exec (-F: no extra fork). Its -w is opened before the chroot, so it gets the host-side path
 * of the directory.
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

/**
 * Why a working directory cannot be used, in the guest's own terms, or undefined. The caller gets
 * a call error naming the directory, not nsenter's (or the spawner's) failure with the agent's
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

/** What a bare command name on no PATH directory writes to the caller's stderr (exit 127). */
export function notFoundMessage(name: string, path: string | undefined): string {
  return `vmctl-agent: cannot run ${JSON.stringify(name)}: not found in the guest's PATH (${path ?? BASE_ENV.PATH}). Fix: install it in the guest or pass its absolute path\n`
}
