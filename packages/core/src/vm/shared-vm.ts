import { createHash } from 'node:crypto'
import { existsSync, rmSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { VmctlError } from '../errors.js'
import { tryLock } from '../host/cross-process-lock.js'
import { logger } from '../log.js'
import { runtimeDir } from '../paths.js'
import { encodeMessage, LineDecoder, type VmStatus } from '../supervisor/control-protocol.js'
import { SupervisorClient } from '../supervisor/supervisor-client.js'
import { VmDirectory, validateVmName } from '../supervisor/vm-directory.js'
import { bootVm } from './boot-vm.js'
import { VM } from './vm.js'
import type { VmOptions } from './vm-options.js'

const log = logger('shared')

/** Where a test run's shared-VM keeper listens; set by `startSharedVmKeeper()` for the workers. */
export const SHARED_KEEPER_ENV = 'VMCTL_SHARED_KEEPER'

/** A lock holder may be booting under TCG (180 s) after a KVM probe; wait longer than that. */
const LOCK_TIMEOUT_MS = 10 * 60_000
const GONE_TIMEOUT_MS = 15_000

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
export async function upShared(name: string, options: SharedVmOptions = {}): Promise<VM> {
  validateVmName(name)
  const rest = options as VmOptions
  if (rest.name !== undefined || rest.persistent !== undefined) {
    throw new VmctlError('INVALID_OPTIONS', 'VM.upShared() takes the name apart and is never persistent')
  }
  const release = await acquireLock(lockName(name))
  try {
    let vm = await attachWithLease(name, options.env ?? {})
    if (vm) log('%s: joined', name)
    else {
      vm = await bootVm({ ...options, name }, (status, control, directory, env, agent) => {
        return new VM(status, control, directory, env, false, agent)
      })
      log('%s: booted', name)
    }
    await askKeeperToHold(name)
    return vm
  } finally {
    release()
  }
}

/** A lease-holding handle on a running VM, or undefined when there is none (or it is ending). */
async function attachWithLease(name: string, env: Record<string, string>): Promise<VM | undefined> {
  const directory = new VmDirectory(name)
  let control: SupervisorClient
  try {
    control = await SupervisorClient.connect(directory.controlSocket)
  } catch {
    // Left behind by a VM whose supervisor died: nothing can use it, and boot needs the name.
    if (existsSync(directory.path) && !existsSync(directory.controlSocket)) await waitGone(directory)
    return undefined
  }
  const ready = new Promise<VmStatus | undefined>((resolve) => {
    control.on('event', (event) => resolve(event.event === 'ready' ? event.status : undefined))
    control.on('close', () => resolve(undefined))
  })
  const reply = await control.request({ op: 'attach', lease: true })
  let status = reply.status as VmStatus | undefined
  if (status?.state === 'booting') status = await ready
  if (status?.state !== 'ready') {
    // Stopping: its last lease just ended. Wait for it to go so the name is free to boot again.
    control.close()
    await waitGone(directory)
    return undefined
  }
  control.unref()
  return new VM(status, control, directory, env, false)
}

async function waitGone(directory: VmDirectory): Promise<void> {
  const deadline = Date.now() + GONE_TIMEOUT_MS
  while (existsSync(directory.path) && Date.now() < deadline) await sleep(50)
  if (existsSync(directory.path) && !existsSync(directory.controlSocket)) {
    rmSync(directory.path, { recursive: true, force: true })
  }
}

function lockName(name: string): string {
  const digest = createHash('sha256').update(`${runtimeDir()}\0${name}`).digest('hex').slice(0, 32)
  return `vmctl-shared-${digest}`
}

/** Waits for the cross-process lock (see cross-process-lock.ts), for as long as a boot may take. */
async function acquireLock(name: string): Promise<() => void> {
  const deadline = Date.now() + LOCK_TIMEOUT_MS
  for (;;) {
    const release = await tryLock(name)
    if (release) return release
    if (Date.now() > deadline) {
      throw new VmctlError('SHARED_LOCK_TIMEOUT', 'waited 10 minutes for another process to boot a shared VM')
    }
    await sleep(100)
  }
}

/** Asks the run's keeper (if this process runs under one) to hold a lease until the run ends. */
async function askKeeperToHold(name: string): Promise<void> {
  const path = process.env[SHARED_KEEPER_ENV]
  if (!path) return
  try {
    const reply = await request(path, { hold: name })
    if (reply.error) throw new Error(String(reply.error))
  } catch (error) {
    // Not fatal: the VM then lives as long as the processes that use it.
    process.stderr.write(
      `vmctl: the test run's shared-VM keeper (${path}) could not hold ${name}: ${(error as Error).message}\n`,
    )
  }
}

function request(path: string, message: unknown): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path)
    const decoder = new LineDecoder()
    socket.setEncoding('utf8')
    socket.once('connect', () => socket.write(encodeMessage(message)))
    socket.on('data', (chunk: string) => {
      const [reply] = decoder.push(chunk)
      if (reply) {
        socket.end()
        resolve(reply as Record<string, unknown>)
      }
    })
    socket.once('error', reject)
    socket.once('close', () => reject(new Error('the keeper closed the connection')))
  })
}

/** The handle of a running keeper. */
export interface SharedVmKeeper {
  /** The socket path; also in `process.env.VMCTL_SHARED_KEEPER` for processes started later. */
  readonly path: string
  /** Names of the shared VMs held so far. */
  readonly held: readonly string[]
  /** Ends the held leases and waits (bounded) for VMs nobody else holds to be gone. */
  close(): Promise<void>
}

/**
 * Holds shared VMs for a whole test run: call it in the runner's main process (vitest or jest
 * global setup) before workers start. Workers find it through `VMCTL_SHARED_KEEPER` and ask it to
 * take a lease on every VM they get from `VM.upShared()`. Its leases end with `close()` at the end
 * of the run, or with the runner's process if that dies first.
 */
export async function startSharedVmKeeper(): Promise<SharedVmKeeper> {
  const path = join(runtimeDir(), `keeper-${process.pid}-${Date.now().toString(36)}.sock`)
  const leases = new Map<string, SupervisorClient>()
  const server = net.createServer((socket) => {
    const decoder = new LineDecoder()
    socket.setEncoding('utf8')
    socket.on('error', () => {})
    socket.on('data', async (chunk: string) => {
      for (const message of decoder.push(chunk) as Array<{ hold?: string }>) {
        if (typeof message.hold !== 'string') continue
        const name = message.hold
        try {
          if (!leases.has(name)) {
            const control = await SupervisorClient.connect(new VmDirectory(name).controlSocket)
            await control.request({ op: 'attach', lease: true })
            control.unref()
            leases.set(name, control)
            control.on('close', () => leases.get(name) === control && leases.delete(name))
            log('keeper holds %s', name)
          }
          socket.write(encodeMessage({ held: name }))
        } catch (error) {
          socket.write(encodeMessage({ error: (error as Error).message }))
        }
      }
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => resolve())
  })
  server.unref()
  process.env[SHARED_KEEPER_ENV] = path
  return {
    path,
    get held() {
      return [...leases.keys()]
    },
    async close() {
      if (process.env[SHARED_KEEPER_ENV] === path) delete process.env[SHARED_KEEPER_ENV]
      await new Promise<void>((resolve) => server.close(() => resolve()))
      const names = [...leases.keys()]
      for (const control of leases.values()) control.close()
      leases.clear()
      // Another run may hold one of them too; then it stays, and we stop waiting after a while.
      await Promise.all(names.map((name) => waitGoneQuietly(new VmDirectory(name))))
    },
  }
}

async function waitGoneQuietly(directory: VmDirectory): Promise<void> {
  const deadline = Date.now() + GONE_TIMEOUT_MS
  while (existsSync(directory.path) && Date.now() < deadline) await sleep(50)
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
