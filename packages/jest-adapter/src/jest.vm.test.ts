import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, test } from 'vitest'

// Real jest runs of real projects that install @vmctl/jest by name: examples/4-jest (CommonJS), the
// ES module smoke project in ../test/esm, and ../test/cases, whose tests fail or skip on purpose.
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))
const cli = here('../../cli/dist/main.js')
const run = promisify(execFile)

async function jest(project: string, args: string[] = [], env: Record<string, string> = {}, esm = false) {
  const cwd = here(project)
  const argv = [
    ...(esm ? ['--experimental-vm-modules'] : []),
    join(cwd, 'node_modules/jest/bin/jest.js'),
    ...args,
  ]
  const result = await run(process.execPath, argv, {
    cwd,
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

function networkDir(name: string): string {
  const base = process.env.VMCTL_RUNTIME_DIR ?? join(tmpdir(), `vmctl-${process.getuid?.()}`)
  return join(base, 'networks', name)
}

describe('jest with @vmctl/jest', () => {
  test('a CommonJS project: examples/4-jest, environment and helpers (vm)', async () => {
    const { code, output } = await jest('../../../examples/4-jest')
    expect(code, output).toBe(0)
    expect(output).toMatch(/Tests:\s+4 passed, 4 total/)
  })

  test('an ES module project, with a VM and a network shared through the run keeper (vm)', async () => {
    const name = `jest-esm-${process.pid}`
    const network = `jest-net-${process.pid}`
    const env = { SMOKE_SHARED_NAME: name, SMOKE_NETWORK_NAME: network }
    const { code, output } = await jest('../test/esm', [], env, true)
    expect(code, output).toBe(0)
    expect(output).toMatch(/Tests:\s+3 passed, 3 total/)
    expect(await goneWithin(vmDir(name))).toBe(true)
    expect(await goneWithin(networkDir(network))).toBe(true)
  })

  test('useVm(): a boot that outlives its hook says so, and its VM is destroyed once booted, not at worker exit (vm)', async () => {
    // VMCTL_BOOT_BUDGET_MS=300: the hook times out while the VM boots; the case file's second test
    // watches the VM directory from the same worker (before the fix the VM lived until it exited).
    const { code, output } = await jest('../test/cases', ['boot-timed-out'], { VMCTL_BOOT_BUDGET_MS: '300' })
    expect(code).not.toBe(0)
    expect(output, output).toMatch(/Tests:\s+1 failed, 1 passed, 2 total/)
    expect(output).toMatch(
      /Exceeded timeout of 300 ms for a hook[\s\S]*vmctl: useVm\(\) was still booting the test's VM when its hook's timeout passed \(300 ms/,
    )
    expect(output).toContain('Fix: raise VMCTL_BOOT_BUDGET_MS')
  })

  test('a host that cannot run VMs skips with the reason; VMCTL_REQUIRE=1 fails', async () => {
    const broken = { VMCTL_QEMU: '/nonexistent/qemu' }
    const [skipped, required] = await Promise.all([
      jest('../test/cases', ['skipped'], broken),
      jest('../test/cases', ['skipped'], { ...broken, VMCTL_REQUIRE: '1' }),
    ])
    expect(skipped.code, skipped.output).toBe(0)
    expect(skipped.output).toMatch(/Tests:\s+2 skipped, 2 total/)
    // One line for the run (two files), with the whole reason and the fix.
    expect(skipped.output.match(/^vmctl: skipping VM tests, this host cannot run VMs: .*$/gm)).toEqual([
      expect.stringMatching(
        /VMCTL_QEMU=\/nonexistent\/qemu was not found in PATH \(.*\)\. Fix: install QEMU .*VMCTL_REQUIRE=1 fails them instead\)$/,
      ),
    ])
    expect(required.code).not.toBe(0)
    expect(required.output.match(/VMCTL_REQUIRE=1 is set/g)?.length).toBeGreaterThanOrEqual(2)
  })

  test('failures show what the VM had, its console and agent log; VMCTL_KEEP=1 keeps the VMs (vm)', async () => {
    const { code, output } = await jest('../test/cases', ['failing'], { VMCTL_KEEP: '1' })
    const kept = [
      ...output.matchAll(/VMCTL_KEEP=1: VM (\S+) is still running. Reach it with: .*vmctl exec \1 -- sh/g),
    ].map((m) => m[1]!)
    try {
      expect(code).not.toBe(0)
      expect(output).toMatch(/--- stdout ---\n\s*out\n\s*--- stderr ---\n\s*err/) // environment
      expect(output).toMatch(/to listen on TCP port 4242\n\s*--- listening TCP ports ---\n\s*\(none\)/) // helpers
      expect(output.match(/guest console, last \d+ lines ---/g)).toHaveLength(2)
      expect(output.match(/agent log, last \d+ lines ---\n\s*started/g)).toHaveLength(2)
      expect(kept).toHaveLength(2)
      const { stdout } = await run(process.execPath, [cli, 'exec', kept[0]!, '--', 'hostname'])
      expect(stdout.trim()).toBe(kept[0])
    } finally {
      for (const name of kept) await run(process.execPath, [cli, 'down', name])
    }
  })
})
