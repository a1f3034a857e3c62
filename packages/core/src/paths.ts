import { lstatSync, mkdirSync } from 'node:fs'
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
 * socket gives root in the guest to whoever can connect to it.
 */
export function runtimeDir(env: NodeJS.ProcessEnv = process.env): string {
  const base =
    env.VMCTL_RUNTIME_DIR ||
    (env.XDG_RUNTIME_DIR
      ? join(env.XDG_RUNTIME_DIR, 'vmctl')
      : join(tmpdir(), `vmctl-${process.getuid?.() ?? 'user'}`))
  mkdirSync(base, { recursive: true, mode: 0o700 })
  assertPrivateDirectory(base)
  return base
}

export function vmsDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = join(runtimeDir(env), 'vms')
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
