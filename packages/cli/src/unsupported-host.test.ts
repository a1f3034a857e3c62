import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'

// The built CLI and the library on a host they do not support: these machines are x86-64 Linux,
// so a preload makes Node report another CPU or OS (`process.arch`, `process.platform`); the rest
// of each run is real. The refusal comes first, before a kernel is fetched or a VM started.
const CLI = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const CORE = fileURLToPath(new URL('../../core/dist/index.js', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'vmctl-unsupported-host-'))
const cache = join(dir, 'cache')
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function preload(platform: string, arch: string): string {
  const path = join(dir, `as-${platform}-${arch}.cjs`)
  writeFileSync(
    path,
    `Object.defineProperty(process, 'platform', { value: ${JSON.stringify(platform)} })
Object.defineProperty(process, 'arch', { value: ${JSON.stringify(arch)} })\n`,
  )
  return path
}

function run(args: string[], as: [string, string]) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ['--require', preload(...as), ...args],
      {
        env: { ...process.env, XDG_CACHE_HOME: cache, VMCTL_RUNTIME_DIR: join(dir, 'run') },
        timeout: 60_000,
      },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    )
  })
}

describe('a host vmctl does not support is refused at once, saying so', () => {
  test('vmctl setup on arm64 Linux: the cause and the fix, and no kernel fetched', async () => {
    const { code, stdout, stderr } = await run([CLI, 'setup'], ['linux', 'arm64'])
    expect(code).toBe(1)
    expect(stdout).toBe('')
    expect(stderr).toMatch(/this host is linux\/arm64, and vmctl runs VMs on x86-64 Linux only/)
    expect(stderr).toMatch(/Fix: run the VM tests on an x86-64 Linux machine/)
    expect(readdirSync(dir)).not.toContain('cache')
  })

  test('vmctl run on macOS, and VM.up() from the library: UNSUPPORTED_HOST before anything starts', async () => {
    const cli = await run([CLI, 'run', '--', 'true'], ['darwin', 'arm64'])
    expect(cli.code).not.toBe(0)
    expect(cli.stderr).toMatch(
      /this host is darwin\/arm64, and vmctl runs VMs on x86-64 Linux only: macOS cannot serve as vmctl's host/,
    )
    const library = await run(
      [
        '--input-type=module',
        '-e',
        `import { VM } from ${JSON.stringify(CORE)}
VM.up().then(() => process.exit(3), (e) => { console.log(e.code); process.exit(0) })`,
      ],
      ['linux', 'arm64'],
    )
    expect(library.stdout.trim()).toBe('UNSUPPORTED_HOST')
    expect(readdirSync(dir)).not.toContain('run')
  })
})
