import { once } from 'node:events'
import { createReadStream } from 'node:fs'
import net from 'node:net'
import { pipeline } from 'node:stream/promises'
import { sleep } from '../util/timing.js'
import type { QmpClient } from './qmp-client.js'

interface MigrationStatus {
  status?: string
  'error-desc'?: string
}

/** Quotes a path for QEMU's `exec:` migration URIs (run by /bin/sh). */
function shellQuote(path: string): string {
  return `'${path.replace(/'/g, `'\\''`)}'`
}

/**
 * Saves a stopped VM's device state to `path`. With x-ignore-shared, RAM that lives in a shared
 * memory-backend-file is not copied (it already is the file): the state is tens of KB and the save
 * takes milliseconds (docs/prototype-measurements.md section 6). QEMU 7.2 has no `file:` URI, hence `exec:`.
 */
export async function saveDeviceState(qmp: QmpClient, path: string, ignoreShared: boolean): Promise<void> {
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [{ capability: 'x-ignore-shared', state: ignoreShared }],
  })
  await startMigration(qmp, `exec:cat > ${shellQuote(path)}`)
  await waitForMigration(qmp, 'saving the VM state')
}

/**
 * How long a command QEMU refuses with "Migration is not finalized yet" is tried again. QEMU says so
 * while a migration it reported ended is still being finished off by its migration thread, and on
 * a loaded host that takes seconds: the bound is for a QEMU that never finishes, not a slow one.
 */
const FINALIZE_WAIT_MS = 30_000

/**
 * `migrate`, once QEMU allows it. A VM restored from a state refuses a new migration ("Migration is
 * not finalized yet") until the incoming one is cleaned up, which QEMU does after it reported it
 * completed: a snapshot taken at once after `VM.up()` met that on a loaded host (a whole-suite run
 * under Node 24). Waited out, within a bound; any other refusal is thrown at once.
 */
export async function startMigration(qmp: Pick<QmpClient, 'execute'>, uri: string): Promise<void> {
  await onceFinalized(() => qmp.execute('migrate', { uri }))
}

/**
 * `cont` after a save. QEMU reports a migration completed before its migration thread has moved
 * the VM out of the finish-migrate state, and refuses `cont` until then ("Migration is not
 * finalized yet"): a snapshot on a loaded host failed so (a whole-suite run beside other VM tests).
 */
export async function resumeAfterSave(qmp: Pick<QmpClient, 'execute'>): Promise<void> {
  await onceFinalized(() => qmp.execute('cont'))
}

async function onceFinalized(command: () => Promise<unknown>): Promise<void> {
  const until = performance.now() + FINALIZE_WAIT_MS
  for (;;) {
    try {
      await command()
      return
    } catch (error) {
      if (!/not finalized yet/i.test((error as Error).message) || performance.now() > until) throw error
      await sleep(20)
    }
  }
}

/**
 * Loads a state saved by saveDeviceState into a QEMU started with `-incoming defer` and the same
 * devices, then resumes the guest. QEMU listens on `socket` for it and this process streams the
 * file in: an `exec:cat` URI had QEMU fork itself and run a shell and cat on the restore's
 * critical path (~40 ms of wall and ~30 ms of QEMU's CPU on a host where process start-up is dear,
 * docs/restore-to-ready.md), and QEMU tells the end by an event instead of being asked every 5 ms.
 */
export async function loadDeviceState(
  qmp: QmpClient,
  path: string,
  socket: string,
  ignoreShared: boolean,
  mark: (what: string) => void = () => {},
): Promise<void> {
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [
      { capability: 'x-ignore-shared', state: ignoreShared },
      { capability: 'events', state: true },
    ],
  })
  const ended = migrationEnded(qmp)
  try {
    await qmp.execute('migrate-incoming', { uri: `unix:${socket}` })
    mark('migrate-incoming started')
    // A write cut short because QEMU gave up is not the cause (the status says why); a state that
    // cannot be read or sent at all is, and nothing else would end the wait.
    let sendError: Error | undefined
    const sent = streamInto(socket, path).catch((error: Error) => {
      sendError = error
    })
    await Promise.race([ended.promise, sent.then(() => (sendError ? undefined : ended.promise))])
    if (sendError && !(await migrationCompleted(qmp)))
      throw new Error(`loading the VM state failed: cannot send ${path}: ${sendError.message}`)
  } finally {
    ended.stop()
  }
  await checkMigration(qmp, 'loading the VM state')
  mark('state loaded')
  await qmp.execute('cont')
  mark('guest resumed (cont)')
}

/** Copies the file at `path` into QEMU's listening migration socket (exported for its test). */
export async function streamInto(socket: string, path: string): Promise<void> {
  const connection = net.connect(socket)
  // Once the last byte is written the pipeline stops listening, but the socket lives on until QEMU
  // closes it: a QEMU that gives up with bytes unread resets it, and an 'error' nobody hears would
  // end this process. The migration's status says how the load went.
  connection.on('error', () => {})
  await once(connection, 'connect')
  await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), connection)
}

/**
 * Resolves when QEMU reports the migration completed or failed (the `events` capability), or the
 * QMP connection closes; a slow poll of `query-migrate` stands in for an event that never comes.
 */
function migrationEnded(qmp: QmpClient): { promise: Promise<void>; stop: () => void } {
  let stop = () => {}
  const promise = new Promise<void>((resolve) => {
    const onEvent = (name: string, data: unknown) => {
      const status = (data as MigrationStatus | undefined)?.status
      if (name === 'MIGRATION' && status && ENDED.has(status)) resolve()
    }
    const poll = setInterval(() => {
      // A refused query is no end: the connection's close is (below).
      qmp.execute<MigrationStatus>('query-migrate').then(
        (info) => info.status && ENDED.has(info.status) && resolve(),
        () => {},
      )
    }, 250)
    qmp.on('event', onEvent)
    qmp.once('close', resolve)
    stop = () => {
      clearInterval(poll)
      qmp.off('event', onEvent)
      qmp.off('close', resolve)
    }
  })
  return { promise, stop }
}

const ENDED = new Set(['completed', 'failed', 'cancelled'])

async function migrationCompleted(qmp: QmpClient): Promise<boolean> {
  const info = await qmp.execute<MigrationStatus>('query-migrate').catch(() => undefined)
  return info?.status === 'completed'
}

/** Throws the migration's error unless it completed. */
async function checkMigration(qmp: QmpClient, what: string): Promise<void> {
  const info = await qmp.execute<MigrationStatus>('query-migrate')
  if (info.status === 'completed') return
  throw new Error(`${what} failed: ${info['error-desc'] ?? info.status ?? 'no status'}`)
}

async function waitForMigration(qmp: QmpClient, what: string): Promise<void> {
  for (;;) {
    const info = await qmp.execute<MigrationStatus>('query-migrate')
    if (info.status === 'completed') return
    if (info.status === 'failed' || info.status === 'cancelled') {
      throw new Error(`${what} failed: ${info['error-desc'] ?? info.status}`)
    }
    await sleep(5)
  }
}
