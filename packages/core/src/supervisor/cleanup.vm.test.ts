import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'
import { gcHost, listVms, observeHost, runtimeDir, VM, VmExitedError } from '../index.js'
import { eventually, qemuPidsOf, vmDirectoryExists } from '../test-support/vm-processes.js'

const CREATOR = fileURLToPath(new URL('../../test/fixtures/creator.mjs', import.meta.url))
const CLI = fileURLToPath(new URL('../../../cli/dist/main.js', import.meta.url))

function startCreator(args: string[], script = CREATOR): { child: ChildProcess; ready: Promise<string> } {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const ready = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const match = output.match(/ready (\S+)/)
      if (match) resolve(match[1]!)
    })
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
    })
    child.on('exit', (code) =>
      reject(new Error(`creator exited (${code}) before its VM was ready:\n${output}`)),
    )
  })
  return { child, ready }
}

async function expectGone(name: string): Promise<number> {
  const log = join(runtimeDir(), 'vms', name, 'supervisor.log')
  return eventually(
    () => qemuPidsOf(name).length === 0 && !vmDirectoryExists(name),
    5_000,
    () =>
      `VM ${name} torn down (QEMU pids: ${qemuPidsOf(name).join(',') || 'none'}; supervisor log:\n${existsSync(log) ? readFileSync(log, 'utf8') : 'gone'})`,
  )
}

// Four creators boot at once (each VM costs a cold boot under TCG; in parallel they share it).
describe('vm: nothing outlives the process that created it', () => {
  test('SIGINT, SIGTERM, an uncaught error and SIGKILL of the creator each tear the VM down within 5 s', async () => {
    const cases = [
      { how: 'SIGINT', ...startCreator(['wait']) },
      { how: 'SIGTERM', ...startCreator(['wait']) },
      { how: 'uncaught error', ...startCreator(['throw']) },
      { how: 'SIGKILL', ...startCreator(['wait']) },
    ]
    const names = await Promise.all(
      cases.map(async (c) => {
        if (c.how === 'uncaught error') c.child.removeAllListeners('exit')
        return c.ready
      }),
    )
    await Promise.all(
      cases.map(async (c, i) => {
        const name = names[i]!
        if (c.how !== 'uncaught error')
          expect(qemuPidsOf(name).length, `QEMU of ${name} runs`).toBeGreaterThan(0)
        if (c.how.startsWith('SIG')) c.child.kill(c.how as NodeJS.Signals)
        const ms = await expectGone(name)
        expect(ms, `${c.how}: teardown took ${ms} ms`).toBeLessThan(5_000)
      }),
    )
  })

  test('a SIGKILLed supervisor takes QEMU with it; listVms() skips it, ps flags it, gc removes it and says so', async () => {
    const vm = await VM.up({ name: `orphan-${process.pid}` })
    const status = listVms().find((v) => v.directory.name === vm.name)?.status
    expect(status?.qemuPid).toBeGreaterThan(0)
    process.kill(status!.pid, 'SIGKILL')
    await eventually(() => qemuPidsOf(vm.name).length === 0, 5_000, 'QEMU died with its supervisor')
    expect(listVms().map((v) => v.directory.name)).not.toContain(vm.name)
    // Not swept silently any more: the directory stays until gc (or vmctl down --all) names it.
    expect(vmDirectoryExists(vm.name)).toBe(true)
    expect(observeHost().findings).toContainEqual(
      expect.objectContaining({ vm: vm.name, kind: 'dead-supervisor' }),
    )
    const actions = await gcHost({ kinds: ['dead-supervisor'] })
    expect(actions).toContainEqual(
      expect.objectContaining({ done: true, finding: expect.objectContaining({ vm: vm.name }) }),
    )
    expect(vmDirectoryExists(vm.name)).toBe(false)
    await expect(vm.exec('true')).rejects.toBeInstanceOf(VmExitedError)
    await vm.destroy()
  })

  test('destroy() after destroy({ waitForExit: false }) resolves once the VM is gone, as its doc says', async () => {
    const vm = await VM.up({ name: `handoff-${process.pid}` })
    await vm.destroy({ waitForExit: false }) // answered once the teardown has begun
    await vm.destroy()
    expect(vmDirectoryExists(vm.name)).toBe(false)
    expect(qemuPidsOf(vm.name)).toEqual([])
  })

  test('SIGINT to `vmctl run` destroys its VM', async () => {
    const child = spawn(process.execPath, [CLI, 'run', '--', 'echo ready $(hostname); sleep 300'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const name = await new Promise<string>((resolve, reject) => {
      let output = ''
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        const match = output.match(/ready (\S+)/)
        if (match) resolve(match[1]!)
      })
      child.stderr.on('data', (chunk: Buffer) => {
        output += chunk.toString()
      })
      child.on('exit', () => reject(new Error(`vmctl run exited early:\n${output}`)))
    })
    child.removeAllListeners('exit')
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    expect(qemuPidsOf(name).length).toBeGreaterThan(0)
    child.kill('SIGINT')
    expect(await exited).toBe(130)
    await expectGone(name)
  })
})
