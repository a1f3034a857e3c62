import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, test } from 'vitest'

// Whole vitest runs of the case files in ../test, as a user would start them, observed from outside.
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))
const vitestBin = here('../node_modules/vitest/vitest.mjs')
const config = here('../test/vitest.config.ts')
const cli = here('../../cli/dist/main.js')
const run = promisify(execFile)

async function vitest(filter: string, env: Record<string, string> = {}) {
  const result = await run(process.execPath, [vitestBin, 'run', '--config', config, filter], {
    env: { ...process.env, ...env, CI: '1', NO_COLOR: '1', FORCE_COLOR: '0' },
    maxBuffer: 16 * 1024 * 1024,
  }).then(
    (r) => ({ ...r, code: 0 }),
    (e: { stdout: string; stderr: string; code: number }) => e,
  )
  return { code: result.code, output: `${result.stdout}\n${result.stderr}` }
}

/** Whether `path` is gone within 15 s: a VM's removal follows its last lease by a moment. */
async function goneWithin(path: string): Promise<boolean> {
  const deadline = Date.now() + 15_000
  while (existsSync(path) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  return !existsSync(path)
}

function vmDir(name: string): string {
  const base = process.env.VMCTL_RUNTIME_DIR ?? join(tmpdir(), `vmctl-${process.getuid?.()}`)
  return join(base, 'vms', name)
}

describe('vitest runs with the adapter', () => {
  test('a host that cannot run VMs skips VM tests with one line per run (the reason); VMCTL_REQUIRE=1 fails them', async () => {
    const broken = { VMCTL_QEMU: '/nonexistent/qemu' }
    // Two files (skipped.case.ts, skipped-second.case.ts) in two workers, one line for the run.
    const [skipped, required] = await Promise.all([
      vitest('skipped', broken),
      vitest('skipped', { ...broken, VMCTL_REQUIRE: '1' }),
    ])
    expect(skipped.code, skipped.output).toBe(0)
    expect(skipped.output).toMatch(/Tests\s+2 skipped \(2\)/)
    expect(skipped.output.match(/^vmctl: skipping VM tests, this host cannot run VMs: .*$/gm)).toEqual([
      expect.stringMatching(
        /VMCTL_QEMU=\/nonexistent\/qemu was not found in PATH \(.*\)\. Fix: install QEMU .*VMCTL_REQUIRE=1 fails them instead\)$/,
      ),
    ])
    expect(required.code).not.toBe(0)
    expect(required.output).toContain('VMCTL_REQUIRE=1 is set: VMCTL_QEMU=/nonexistent/qemu was not found')
  })

  test('a failing test (vm) shows the console and agent log; VMCTL_KEEP=1 keeps its VM for vmctl exec', async () => {
    const [plain, kept] = await Promise.all([vitest('failing'), vitest('failing', { VMCTL_KEEP: '1' })])
    for (const { code, output } of [plain, kept]) {
      expect(code).not.toBe(0)
      expect(output).toContain('to succeed, but it exited with 3')
      expect(output).toMatch(/--- stdout ---\nout\n--- stderr ---\nerr/)
      expect(output).toMatch(/guest console, last \d+ lines ---\n[\s\S]*vmctl-agent: started/)
      expect(output).toMatch(/agent log, last \d+ lines ---\nstarted/)
    }
    expect(plain.output).toContain('Run with VMCTL_KEEP=1 to keep the VM of a failing test')
    const plainName = /VM (a-command-that-fails-[0-9a-f]+): guest console/.exec(plain.output)?.[1]
    expect(plainName).toBeDefined()
    expect(await goneWithin(vmDir(plainName!))).toBe(true)

    const name = /VMCTL_KEEP=1: VM (\S+) is still running. Reach it with: .*vmctl exec \1 -- sh/.exec(
      kept.output,
    )?.[1]
    expect(name, kept.output).toBeDefined()
    try {
      const { stdout } = await run(process.execPath, [cli, 'exec', name!, '--', 'hostname'])
      expect(stdout.trim()).toBe(name)
    } finally {
      await run(process.execPath, [cli, 'down', name!])
    }
  })

  test('a test that times out while its vm boots says so, and its VM is destroyed once booted, not at worker exit (vm)', async () => {
    // The case file's second test watches the VM directory from the same worker: it fails if the
    // late VM lives on (before the fix it lived until the worker exited).
    const { code, output } = await vitest('boot-timed-out')
    expect(code).not.toBe(0)
    expect(output, output).toMatch(/Tests\s+1 failed \| 1 passed \(2\)/)
    expect(output).toMatch(
      /Test timed out in 300ms[\s\S]*vmctl: the test's timeout \(300 ms\) passed while its `vm` fixture was still booting/,
    )
    expect(output).toContain('Fix: leave the timeout out of test()')
    expect(output).not.toMatch(/Unhandled/i)
  })

  test('sharedVm: test files in separate workers share one boot, which ends with the run (vm)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmctl-shared-'))
    const name = `shared-run-${process.pid}`
    try {
      const out = join(dir, 'seen')
      const { code, output } = await vitest('shared-', { SHARED_NAME: name, SHARED_OUT: out })
      expect(code, output).toBe(0)
      const lines = readFileSync(out, 'utf8').trim().split('\n')
      expect(lines).toHaveLength(2)
      const boots = new Set(lines.map((line) => line.split(' ')[2]))
      expect(boots.size).toBe(1)
      expect(lines.every((line) => line.split(' ')[1] === name)).toBe(true)
      expect(await goneWithin(vmDir(name))).toBe(true)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
