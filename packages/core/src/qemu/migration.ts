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
  await qmp.execute('migrate', { uri: `exec:cat > ${shellQuote(path)}` })
  await waitForMigration(qmp, 'saving the VM state')
}

/**
 * Loads a state saved by saveDeviceState into a QEMU started with `-incoming defer` and the same
 * devices, then resumes the guest.
 */
export async function loadDeviceState(
  qmp: QmpClient,
  path: string,
  ignoreShared: boolean,
  mark: (what: string) => void = () => {},
): Promise<void> {
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [{ capability: 'x-ignore-shared', state: ignoreShared }],
  })
  await qmp.execute('migrate-incoming', { uri: `exec:cat ${shellQuote(path)}` })
  mark('migrate-incoming started')
  await waitForMigration(qmp, 'loading the VM state')
  mark('state loaded')
  await qmp.execute('cont')
  mark('guest resumed (cont)')
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
