import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'

const CLI = fileURLToPath(new URL('../dist/main.js', import.meta.url))

function vmctl(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d))
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

const dir = mkdtempSync(join(tmpdir(), 'vmctl-cli-image-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('vm: vmctl with a vmctl.toml image', () => {
  test("from an empty directory: vmctl run -c vmctl.toml -- jq --version prints the image's jq", async () => {
    // The example, verbatim (and the same image the core tests build: one cache entry).
    writeFileSync(join(dir, 'vmctl.toml'), '[image]\ndistribution = "bookworm"\npackages = ["jq"]\n')
    // A command that succeeds writes the CLI's code cache (Node 20): the run below loads the bundle
    // from it, where an import() in the bundle failed (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING).
    expect((await vmctl(['--help'], dir)).code).toBe(0)
    const r = await vmctl(['run', '-c', 'vmctl.toml', '--', 'jq', '--version'], dir)
    expect(r.stderr).not.toContain('Error')
    expect(r.stdout).toBe('jq-1.6\n')
    expect(r.code).toBe(0)
    // ./vmctl.toml is picked up without -c; flags override it.
    const plain = await vmctl(['run', '--cpus', '1', '--', 'nproc; cat /etc/vmctl-image.json'], dir)
    expect(plain.stdout).toMatch(/^1\n\{"key":"[0-9a-f]+","distribution":"bookworm","packages":\["jq"\]/)
    const ls = await vmctl(['image', 'ls'], dir)
    expect(ls.stdout).toMatch(/image\s+[0-9a-f]{20}\s+[\d.]+ MB .*Debian bookworm \+ jq/)
    const build = await vmctl(['image', 'build'], dir)
    expect(build.code).toBe(0)
    expect(build.stdout).toMatch(/images\/[0-9a-f]{20}\/image\.qcow2\n$/)
    expect(build.stderr).toContain('already built (cached)')
  })

  test('a bad config file is one line naming the file, line and field, exit code 2', async () => {
    writeFileSync(join(dir, 'bad.toml'), 'cpus = 1\nmemoryMiB = "lots"\n')
    const r = await vmctl(['run', '-c', 'bad.toml', '--', 'true'], dir)
    expect(r.stderr).toContain(
      'bad.toml:2: memoryMiB: expected a positive integer (MiB), got the string "lots"',
    )
    expect(r.code).toBe(2)
  })
})
