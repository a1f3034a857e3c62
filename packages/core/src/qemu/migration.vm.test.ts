import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import { locateQemu } from '../host/qemu-locator.js'
import { connectWhenReady } from '../util/unix-socket.js'
import { loadDeviceState, saveDeviceState } from './migration.js'
import { QmpClient } from './qmp-client.js'

describe('vm: saving and loading a state against a real QEMU (no guest: -machine none)', () => {
  const children: ChildProcess[] = []
  let dir = ''
  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode !== null || child.signalCode !== null) continue
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGKILL')
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  })

  async function startQemu(name: string, incoming: boolean): Promise<QmpClient> {
    const qmpPath = join(dir, `${name}.qmp`)
    const args = [
      '-machine',
      'none',
      '-nodefaults',
      '-display',
      'none',
      '-qmp',
      `unix:${qmpPath},server=on,wait=off`,
    ]
    const child = spawn(locateQemu(), incoming ? [...args, '-incoming', 'defer'] : args, { stdio: 'ignore' })
    children.push(child)
    const socket = await connectWhenReady(qmpPath, () => child.exitCode === null && child.signalCode === null)
    return QmpClient.over(socket!)
  }

  test('a saved state streams into a QEMU listening for it, which then runs; a bad one fails, not hangs', async () => {
    dir = mkdtempSync(join(tmpdir(), 'vmctl-migration-test-'))
    const state = join(dir, 'state')
    const source = await startQemu('source', false)
    await source.execute('stop')
    await saveDeviceState(source, state, true)
    expect(statSync(state).size).toBeGreaterThan(0)

    const target = await startQemu('target', true)
    const steps: string[] = []
    await loadDeviceState(target, state, join(dir, 'state.sock'), true, (step) => steps.push(step))
    expect(steps).toEqual(['migrate-incoming started', 'state loaded', 'guest resumed (cont)'])
    expect(await target.execute('query-status')).toMatchObject({ status: 'running' })

    const garbage = join(dir, 'garbage')
    writeFileSync(garbage, Buffer.alloc(4096, 7))
    const other = await startQemu('other', true)
    const started = performance.now()
    // QEMU 7.2 exits on a stream it cannot load (the supervisor then reports QEMU's own words).
    await expect(loadDeviceState(other, garbage, join(dir, 'other.sock'), true)).rejects.toThrow(
      /QMP connection closed|loading the VM state failed/,
    )
    expect(performance.now() - started).toBeLessThan(5_000)
  })
})
