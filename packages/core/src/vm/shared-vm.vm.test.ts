import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, test } from 'vitest'
import { VmDirectory } from '../supervisor/vm-directory.js'
import { pollUntil } from '../util/timing.js'
import { SHARED_KEEPER_ENV, startSharedVmKeeper } from './shared-vm-keeper.js'

// Children import the built package, as worker processes of a test runner would.
const coreDist = fileURLToPath(new URL('../../dist/index.js', import.meta.url))
const children: ChildProcess[] = []

/** A process that gets the shared VM, says which boot of which VM it sees, and waits to be killed. */
function user(
  name: string,
  keeperPath?: string,
): Promise<{ child: ChildProcess; vmName: string; bootId: string }> {
  const script = `
    import { VM } from ${JSON.stringify(coreDist)}
    const vm = await VM.upShared(${JSON.stringify(name)})
    const { stdout } = await vm.exec('cat /proc/sys/kernel/random/boot_id')
    console.log(JSON.stringify({ vmName: vm.name, bootId: stdout.trim() }))
    setInterval(() => {}, 1 << 30)`
  // Not the test run's keeper (vitest.config.ts starts one): these tests count leases themselves.
  const { [SHARED_KEEPER_ENV]: _keeper, ...env } = process.env
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: keeperPath ? { ...env, [SHARED_KEEPER_ENV]: keeperPath } : env,
  })
  children.push(child)
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', (line) => resolve({ child, ...JSON.parse(line) }))
    child.once('exit', (code) => reject(new Error(`the child exited (${code}) before reporting`)))
  })
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}

async function gone(name: string, timeoutMs = 15_000): Promise<boolean> {
  const directory = new VmDirectory(name)
  return (await pollUntil(() => !existsSync(directory.path), { timeoutMs, everyMs: 100 })) === true
}

afterEach(async () => {
  await Promise.all(children.splice(0).map(kill))
})

describe('shared vm across processes', () => {
  test('processes that ask at once share one boot; the VM lives until the last of them dies', async () => {
    const name = `shared-a-${process.pid}`
    const [a, b] = await Promise.all([user(name), user(name)])
    expect(a.vmName).toBe(name)
    expect(b.bootId).toBe(a.bootId)
    await kill(a.child) // SIGKILL: the kernel ends its lease
    await new Promise((r) => setTimeout(r, 500))
    expect(existsSync(new VmDirectory(name).path)).toBe(true)
    await kill(b.child)
    expect(await gone(name)).toBe(true)
  })

  test('a keeper holds it between users, and its close ends it', async () => {
    const name = `shared-b-${process.pid}`
    const keeper = await startSharedVmKeeper()
    try {
      const first = await user(name, keeper.path)
      await kill(first.child)
      expect(keeper.held).toEqual([name])
      const second = await user(name, keeper.path) // joins the same boot: no second VM
      expect(second.bootId).toBe(first.bootId)
      await kill(second.child)
      expect(existsSync(new VmDirectory(name).path)).toBe(true)
    } finally {
      await keeper.close()
    }
    expect(await gone(name, 1_000)).toBe(true)
  })
})
