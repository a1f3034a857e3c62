import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { EarlyQemu, type EarlyQemuPlan } from './early-qemu.js'
import { isAlive } from './vm-directory.js'

/**
 * A spare supervisor's QEMU, started before its VM is known. A process that makes VMs one after
 * another (a test file's beforeEach) starts a spare supervisor at each destroy() (vm/spare-supervisor.ts);
 * it is also handed, in this variable, the QEMU command of a clone of the VM just destroyed, and
 * starts that QEMU at once, waiting for a state to load. QEMU's own start (~0.1 s of CPU, more on a
 * host where process start-up is dear: docs/restore-to-ready.md) then runs between two tests, not
 * on the next VM.up()'s path. The next VM takes it if its clone's command is the same but for
 * where the sockets are (EarlyQemu.stands, QemuProcess); otherwise it is killed unused.
 *
 * Its sockets live in a directory of its own (the VM's does not exist yet), under the runtime
 * directory's `spare-qemu/`: made here, with the supervisor's pid in `owner`, and removed when the
 * supervisor exits (its QEMU dies with it: the parent-death signal). One left by a supervisor that
 * was SIGKILLed is removed by the next spare's start (sweepPrestartDirs).
 */
export const PRESTART_VARIABLE = 'VMCTL_PRESTARTED_QEMU'

/** Where spare supervisors' QEMUs keep their sockets, one directory each. */
export function prestartDirs(runtimeDir: string): string {
  return join(runtimeDir, 'spare-qemu')
}

/** The supervisor's side: starts the QEMU its creator planned (and takes the plan out of `env`). */
export function startPrestartedQemu(env: NodeJS.ProcessEnv = process.env): EarlyQemu | undefined {
  const raw = env[PRESTART_VARIABLE]
  delete env[PRESTART_VARIABLE]
  if (!raw) return undefined
  let socketDir: string | undefined
  try {
    socketDir = (JSON.parse(raw) as EarlyQemuPlan).socketDir
  } catch {}
  if (!socketDir) return undefined
  try {
    mkdirSync(socketDir, { recursive: true, mode: 0o700 })
    writeFileSync(join(socketDir, 'owner'), String(process.pid))
  } catch {
    return undefined // VM.up() starts its QEMU as before
  }
  const dir = socketDir
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  return EarlyQemu.start(raw)
}

/** The socket directories whose spare supervisor is gone (a SIGKILLed one leaves its own). */
export function deadPrestartDirs(runtimeDir: string): string[] {
  const base = prestartDirs(runtimeDir)
  let names: string[]
  try {
    names = readdirSync(base)
  } catch {
    return []
  }
  return names
    .map((name) => join(base, name))
    .filter((dir) => {
      const owner = prestartOwner(dir)
      if (owner !== undefined) return !isAlive(owner)
      // No owner yet: a supervisor between its mkdir and its write, unless it is old.
      try {
        return Date.now() - statSync(dir).mtimeMs > 60_000
      } catch {
        return false
      }
    })
}

/** The pid of the spare supervisor that made `dir` (its `owner` file), if written. */
export function prestartOwner(dir: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(join(dir, 'owner'), 'utf8'), 10)
    return pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/** Removes them (also `vmctl gc`, through observeHost's findings). */
export function sweepPrestartDirs(runtimeDir: string): void {
  for (const dir of deadPrestartDirs(runtimeDir)) rmSync(dir, { recursive: true, force: true })
}
