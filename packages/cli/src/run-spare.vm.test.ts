import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { listVms, runtimeDir } from '@vmctl/core'
import { afterAll, describe, expect, test } from 'vitest'

// `VMCTL_SPARE_VM=1 vmctl run`: a spare left for the next `vmctl run` of the same options in the
// same directory, outliving the command that started it for VMCTL_SPARE_IDLE_S (docs/spare-vm.md).
// A directory of this file's own: no other test's VM.up() has its definition.
const CLI = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const cwd = mkdtempSync(join(tmpdir(), 'vmctl-run-spare-'))
const started: string[] = []

afterAll(() => {
  // Whatever a failed test left: its spares end with their supervisors.
  for (const { status, directory } of listVms())
    if (started.includes(directory.name) && status) process.kill(status.pid, 'SIGTERM')
  rmSync(cwd, { recursive: true, force: true })
})

function vmctlRun(command: string[], env: Record<string, string>) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, 'run', '--', ...command], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, VMCTL_SHARED_KEEPER: undefined, DEBUG: 'vmctl:spare', ...env },
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d))
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

/** The spare a run started, from its DEBUG=vmctl:spare line. */
function spareStarted(stderr: string): string {
  const name = /vmctl:spare (\S+): lone spare started /.exec(stderr)?.[1]
  expect(name, stderr).toMatch(/^vm-/)
  started.push(name!)
  return name!
}

async function until(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const spareState = (name: string) => listVms().find((v) => v.directory.name === name)?.status?.spare

describe('vmctl run with VMCTL_SPARE_VM=1 (vm)', () => {
  test('leaves a spare that the next run takes under its own name, and a spare nobody takes ends', async () => {
    const first = await vmctlRun(['hostname'], { VMCTL_SPARE_VM: '1', VMCTL_SPARE_IDLE_S: '120' })
    expect(first.code, first.stderr).toBe(0)
    const spare = spareStarted(first.stderr)
    // It outlives the run that started it: parked, waiting.
    await until(`${spare} parked`, () => spareState(spare) === 'parked')

    // The next run (a short wait for its own spare) takes it: renamed to the run's VM, whose
    // hostname the command prints; the spare's old name is gone with the VM.
    const second = await vmctlRun(['hostname'], { VMCTL_SPARE_VM: '1', VMCTL_SPARE_IDLE_S: '2' })
    expect(second.code, second.stderr).toBe(0)
    const vm = second.stdout.trim()
    expect(second.stderr).toContain(`${vm}: took lone spare ${spare}`)
    expect(vm).not.toBe(spare)
    await until(`${spare} gone with ${vm}`, () => !existsSync(join(runtimeDir(), 'vms', spare)), 10_000)

    // The spare the second run left waits 2 s unused, then ends: nothing of it is left.
    const next = spareStarted(second.stderr)
    await until(`${next} gone after its idle time`, () => !existsSync(join(runtimeDir(), 'vms', next)))
    expect(listVms().some((v) => v.directory.name === next)).toBe(false)
  })

  test('a bad VMCTL_SPARE_IDLE_S is a usage error naming it, before anything boots', async () => {
    const result = await vmctlRun(['true'], { VMCTL_SPARE_VM: '1', VMCTL_SPARE_IDLE_S: 'soon' })
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/VMCTL_SPARE_IDLE_S must be a number of seconds from 1 to 3600.*"soon"/)
  })
})
