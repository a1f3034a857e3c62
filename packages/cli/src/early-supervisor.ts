import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** Commands whose first act is to boot a VM. */
const BOOTING = new Set(['run', 'up'])

/**
 * Starts the VM's supervisor process before anything else (main.ts calls this before it loads the
 * CLI): `supervisor.cjs --await-launch` loads while this process loads the CLI and core and
 * prepares the launch, then waits on its stdin until VM.up() hands it its VM directory
 * (@vmctl/core's early-supervisor.ts, start-vm.ts). Started after the launch was prepared, as
 * before, its Node start-up and loading (~0.1 s of CPU) came after all of the CLI's.
 * Only Node's own modules here: this runs before the bundle is loaded. Not for --help, and not
 * when VMCTL_EARLY_SUPERVISOR=0 (a bench's A/B, or a host where it misbehaves). A command that
 * boots nothing after all (an error, a vmtest file) ends the pipe, and the supervisor exits.
 */
export function startEarlySupervisor(args: string[]): ChildProcess | undefined {
  if (!BOOTING.has(args[0] ?? '') || process.env.VMCTL_EARLY_SUPERVISOR === '0') return undefined
  const end = args.indexOf('--')
  const own = end < 0 ? args : args.slice(0, end)
  if (own.includes('--help') || own.includes('-h')) return undefined
  let entry: string
  try {
    // Where the CLI's bundle finds core's files too (scripts/bundle-cli.mjs): core as Node resolves it.
    entry = fileURLToPath(new URL('supervisor.cjs', import.meta.resolve('@vmctl/core')))
  } catch {
    return undefined
  }
  if (!existsSync(entry)) return undefined // not built: VM.up() says so when it spawns its own
  try {
    const child = spawn(process.execPath, [entry, '--await-launch'], {
      detached: true,
      // stderr: what Node prints if it dies before its hand-off (core's early-supervisor.ts keeps it).
      stdio: ['pipe', 'ignore', 'pipe'],
      // As start-vm.ts spawns a supervisor: not the caller's Node settings.
      env: {
        ...process.env,
        VMCTL_RUNTIME_DIR: undefined,
        NODE_OPTIONS: undefined,
        NODE_EXTRA_CA_CERTS: undefined,
      },
    })
    child.on('error', () => {})
    child.stdin?.on('error', () => {})
    // Neither the process nor its pipe keeps this one's event loop alive: at exit the pipe closes.
    child.unref()
    ;(child.stdin as { unref?: () => void } | null)?.unref?.()
    ;(child.stderr as { unref?: () => void } | null)?.unref?.()
    return child
  } catch {
    return undefined
  }
}
