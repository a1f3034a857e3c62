import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'
import { listVms, VmDirectory } from '../supervisor/vm-directory.js'
import { runCommand } from '../test-support/run-command.js'
import { gcHost } from './host-gc.js'
import { observeHost } from './host-observer.js'

// A runtime directory of its own: the observer sees (and gc removes) only what this file made.
const scratch = mkdtempSync(join(tmpdir(), 'vmctl-abandoned-test-'))
const env = {
  ...process.env,
  VMCTL_RUNTIME_DIR: join(scratch, 'run'),
  VMCTL_DISKS_DIR: join(scratch, 'disks'),
}
mkdirSync(env.VMCTL_RUNTIME_DIR, { mode: 0o700 })
const vmDirectoryModule = fileURLToPath(new URL('../../dist/supervisor/vm-directory.js', import.meta.url))

afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/**
 * A creator SIGKILLed where VM.up() would be at `step`: after making the VM's directory, or after
 * writing its launch.json too, before spawning the supervisor. A real process, killed for real.
 */
async function creatorKilledAfter(name: string, step: 'mkdir' | 'launch.json'): Promise<void> {
  const script = `
    const { writeFileSync } = await import('node:fs')
    const { VmDirectory } = await import(${JSON.stringify(vmDirectoryModule)})
    const directory = new VmDirectory(${JSON.stringify(name)})
    directory.create()
    if (${JSON.stringify(step)} === 'launch.json')
      writeFileSync(directory.launchFile, JSON.stringify({ name: ${JSON.stringify(name)}, creatorPid: process.pid, createdAt: new Date().toISOString() }))
    process.kill(process.pid, 'SIGKILL')`
  const child = await runCommand(process.execPath, ['--input-type=module', '-e', script], {
    env,
    allowFailure: true,
  })
  expect(child.signal, child.stderr).toBe('SIGKILL')
}

describe('a VM directory whose creator died before its supervisor started', () => {
  test('is flagged at once (no minute of grace), skipped by listVms, removed by gc, which says so', async () => {
    await creatorKilledAfter('abandoned-mkdir', 'mkdir')
    await creatorKilledAfter('abandoned-launch', 'launch.json')
    const dirs = ['abandoned-mkdir', 'abandoned-launch'].map((name) => new VmDirectory(name, env))
    for (const directory of dirs) expect(existsSync(directory.path)).toBe(true)
    expect(existsSync(dirs[1]!.launchFile)).toBe(true)

    expect(listVms(env)).toEqual([])
    for (const directory of dirs) expect(existsSync(directory.path), 'listVms changes nothing').toBe(true)
    const { findings, vms } = observeHost(env)
    expect(findings.map((f) => [f.kind, f.vm])).toEqual([
      ['dead-supervisor', 'abandoned-launch'],
      ['dead-supervisor', 'abandoned-mkdir'],
    ])
    expect(findings[0]!.detail).toContain('(launch.json written, no supervisor spawned)')
    expect(vms.map((vm) => vm.state)).toEqual(['dead', 'dead'])

    const actions = await gcHost({ env })
    expect(actions.map((a) => [a.finding.vm, a.done])).toEqual([
      ['abandoned-launch', true],
      ['abandoned-mkdir', true],
    ])
    for (const directory of dirs) expect(existsSync(directory.path)).toBe(false)
    expect(observeHost(env).findings).toEqual([])
  })
})
