import { mkdirSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'

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
  return base
}

export function vmsDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = join(runtimeDir(env), 'vms')
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  return dir
}

/** The command that installs what vmctl needs; named in every "missing piece" error. */
export const SETUP_COMMAND = 'pnpm setup (in a vmctl checkout) or scripts/setup.sh'
