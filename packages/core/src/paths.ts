import { lstatSync, mkdirSync, readdirSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { VmctlError } from './errors.js'

/** Long-lived artifacts: kernels, initramfs images, the accelerator verdict. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.VMCTL_CACHE_DIR) return env.VMCTL_CACHE_DIR
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vmctl')
}

/**
 * Per-VM state: sockets, console log, supervisor log. Private to the user (0700), since the agent
 * socket gives root in the guest to whoever can connect to it. Only computed: whoever writes in it
 * makes it first (ensureRuntimeDir), and whoever lists it takes a missing one as empty
 * (privateEntries), so looking never brings back a directory that someone removed.
 */
export function runtimeDir(env: NodeJS.ProcessEnv = process.env): string {
  return (
    env.VMCTL_RUNTIME_DIR ||
    (env.XDG_RUNTIME_DIR
      ? join(env.XDG_RUNTIME_DIR, 'vmctl')
      : join(tmpdir(), `vmctl-${process.getuid?.() ?? 'user'}`))
  )
}

/** runtimeDir(), made (0700) if missing and checked to be private: for whoever writes in it. */
export function ensureRuntimeDir(env: NodeJS.ProcessEnv = process.env): string {
  return ensurePrivateDirectory(runtimeDir(env))
}

/** The VMs' directories, one per VM (VmDirectory). Only computed, as runtimeDir(). */
export function vmsDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(runtimeDir(env), 'vms')
}

export function ensureVmsDir(env: NodeJS.ProcessEnv = process.env): string {
  ensureRuntimeDir(env)
  return ensurePrivateDirectory(vmsDir(env))
}

/**
 * The entries of one of vmctl's private directories, none if it was never made. One that exists
 * must be private: what is listed here is trusted (pids to stop, directories to remove).
 */
export function privateEntries(dir: string): string[] {
  let entries: string[]
  try {
    entries = readdirSync(dir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw error
  }
  assertPrivateDirectory(dir)
  return entries
}

function ensurePrivateDirectory(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  assertPrivateDirectory(dir)
  return dir
}

/**
 * The runtime directory may sit in a shared /tmp: another user could have made it first, or made it
 * a symlink into our home. vmctl deletes stale entries in it, so it must be ours and private.
 */
function assertPrivateDirectory(path: string): void {
  const stat = lstatSync(path)
  const uid = process.getuid?.()
  if (
    stat.isSymbolicLink() ||
    !stat.isDirectory() ||
    (uid !== undefined && stat.uid !== uid) ||
    (stat.mode & 0o077) !== 0
  ) {
    throw new VmctlError(
      'UNSAFE_RUNTIME_DIR',
      `${path} is not a private directory of this user (a symlink, another owner, or group/other access). Remove it, or set VMCTL_RUNTIME_DIR to a directory only you can use.`,
    )
  }
}

/** The command that fetches and checks what vmctl needs; named in every "missing piece" error. */
export const SETUP_COMMAND = 'npx vmctl setup (in a vmctl checkout: pnpm setup)'
