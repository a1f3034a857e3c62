import { createHash } from 'node:crypto'
import { existsSync, rmSync } from 'node:fs'
import { VmctlError } from '../errors.js'
import { tryLock } from '../host/cross-process-lock.js'
import { askKeeperToHold } from '../host/shared-keeper-client.js'
import { logger } from '../log.js'
import { runtimeDir } from '../paths.js'
import { VmDirectory, validateVmName } from '../supervisor/vm-directory.js'
import { pollUntil } from '../util/timing.js'
import { attachVm, untilGone } from './attach-vm.js'
import { startVm } from './start-vm.js'
import type { VmParts } from './vm-connection.js'
import type { VmOptions } from './vm-options.js'

const log = logger('shared')

/** A lock holder may be booting under TCG (180 s) after a KVM probe; wait longer than that. */
const LOCK_TIMEOUT_MS = 10 * 60_000

/** Options of a shared VM: everything but the name (given apart) and persistence (never). */
export type SharedVmOptions = Omit<VmOptions, 'name' | 'persistent'>

/**
 * The VM called `name`, booted by whichever process asks first and joined by the others, across
 * processes (test workers are processes: an in-memory lock would boot one VM per worker).
 *
 * Counting is the supervisor's lease count: every process that holds a handle holds a lease on the
 * VM's control socket, and the VM is destroyed when the last lease ends (`close()`, or the process
 * exiting in any way, SIGKILL included: the kernel closes the socket). Between test files no worker
 * may hold it, so inside a test run a keeper in the runner's main process (started by the adapters'
 * global setup, see `startSharedVmKeeper()`) holds one lease more until the run ends.
 *
 * Booting is serialised by a lock that the kernel releases when its holder dies: a Linux abstract
 * Unix socket, named after the runtime directory and the VM name. No stale lock files.
 *
 * The first caller's options boot the VM; later callers get that VM whatever they pass.
 * `close()` drops this process's lease; `destroy()` ends the VM for everyone.
 *
 * @example
 * ```ts
 * const db = await VM.upShared('pg', { ports: [5432] })
 * await db.exec('pg_isready')
 * await db.close() // others may still use it
 * ```
 */
export async function upShared(name: string, options: SharedVmOptions = {}): Promise<VmParts> {
  validateVmName(name)
  const rest = options as VmOptions
  if (rest.name !== undefined || rest.persistent !== undefined) {
    throw new VmctlError('INVALID_OPTIONS', 'VM.upShared() takes the name apart and is never persistent')
  }
  const release = await acquireLock(lockName(name))
  try {
    let parts = await attachWithLease(name, options.env ?? {})
    if (parts) log('%s: joined', name)
    else {
      parts = await startVm({ ...options, name })
      log('%s: booted', name)
    }
    await askKeeperToHold(name)
    return parts
  } finally {
    release()
  }
}

/** A lease-holding attach to a running VM, or undefined when there is none (or it is ending). */
async function attachWithLease(name: string, env: Record<string, string>): Promise<VmParts | undefined> {
  const attached = await attachVm(name, { lease: true, env })
  if (typeof attached !== 'string') return attached
  const directory = new VmDirectory(name)
  // 'unreachable' with no control socket: left behind by a VM whose supervisor died; nothing can
  // use it, and boot needs the name. 'not-ready': its last lease just ended; it is stopping.
  if (attached === 'not-ready' || (existsSync(directory.path) && !existsSync(directory.controlSocket))) {
    await untilGone(directory)
    if (existsSync(directory.path) && !existsSync(directory.controlSocket)) {
      rmSync(directory.path, { recursive: true, force: true })
    }
  }
  return undefined
}

function lockName(name: string): string {
  const digest = createHash('sha256').update(`${runtimeDir()}\0${name}`).digest('hex').slice(0, 32)
  return `vmctl-shared-${digest}`
}

/** Waits for the cross-process lock (see cross-process-lock.ts), for as long as a boot may take. */
async function acquireLock(name: string): Promise<() => void> {
  const release = await pollUntil(() => tryLock(name), { timeoutMs: LOCK_TIMEOUT_MS, everyMs: 100 })
  if (release) return release
  throw new VmctlError('SHARED_LOCK_TIMEOUT', 'waited 10 minutes for another process to boot a shared VM')
}
