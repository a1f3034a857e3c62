import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import { locateQemu } from '../host/qemu-locator.js'
import { sleep } from '../util/timing.js'
import { connectWhenReady } from '../util/unix-socket.js'
import { QmpClient } from './qmp-client.js'

/** Settles with what `promise` did, or 'still pending' after `ms`: a hang shows as a value. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | Error | 'still pending'> {
  return Promise.race([promise.catch((e: Error) => e), sleep(ms).then(() => 'still pending' as const)])
}

describe('vm: the QMP client against a real QEMU (no guest: -machine none)', () => {
  let qemu: ChildProcess | undefined
  let dir: string | undefined
  afterEach(async () => {
    if (qemu && qemu.exitCode === null && qemu.signalCode === null) {
      const exited = new Promise((resolve) => qemu!.once('exit', resolve))
      qemu.kill('SIGKILL')
      await exited
    }
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  test('a command on a connection QEMU closed fails at once, not by waiting forever', async () => {
    dir = mkdtempSync(join(tmpdir(), 'vmctl-qmp-test-'))
    const path = join(dir, 'qmp.sock')
    const child = spawn(
      locateQemu(),
      ['-machine', 'none', '-nodefaults', '-display', 'none', '-qmp', `unix:${path},server=on,wait=off`],
      { stdio: 'ignore' },
    )
    qemu = child
    const exited = new Promise((resolve) => child.once('exit', resolve))
    const socket = await connectWhenReady(path, () => child.exitCode === null && child.signalCode === null)
    const qmp = await QmpClient.over(socket!)
    expect(await qmp.execute('query-status')).toMatchObject({ status: expect.any(String) })
    await qmp.execute('quit').catch(() => {})
    await exited
    // Before: the write to the closed socket failed silently and the command waited for ever, and so
    // did whatever awaited it (a disk request or a start's re-plug on a QEMU that had just exited).
    const after = await within(qmp.execute('query-status'), 5_000)
    expect(after).toBeInstanceOf(Error)
    expect(String(after)).toContain('QMP connection closed (before query-status)')
    qmp.close()
    expect(String(await within(qmp.execute('query-status'), 5_000))).toContain('QMP connection closed')
  })
})
