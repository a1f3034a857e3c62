import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'

const CLI = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const BUNDLE = fileURLToPath(new URL('../dist/cli-main.cjs', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'vmctl-cli-code-cache-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function vmctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      {
        env: {
          ...process.env,
          XDG_CACHE_HOME: join(dir, 'cache'),
          VMCTL_CACHE_DIR: '',
          VMCTL_CODE_CACHE: '',
        },
      },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    )
  })
}

// On Node 20 the bundle is loaded through V8's code cache, and functions V8 deserializes from one
// have lost the dynamic-import callback: an import() in the bundle failed on every run after the
// first (vmctl disk create imports execa lazily to run qemu-img).
describe('the vmctl bundle through its code cache', () => {
  test('has no import() of its own: lazily loaded packages come through cli-import.cjs', () => {
    expect(readFileSync(BUNDLE, 'utf8')).not.toMatch(/\bimport\(/)
  })

  test('vmctl disk create works on the run that writes the cache and on the runs that load it', async () => {
    const cacheFiles = () => {
      try {
        return readdirSync(join(dir, 'cache', 'vmctl', 'code-cache')).filter((name) =>
          name.startsWith('cli-'),
        )
      } catch {
        return []
      }
    }
    for (const run of [1, 2, 3]) {
      const disk = join(dir, `disk-${run}.qcow2`)
      const result = await vmctl(['disk', 'create', '--size', '16', '--path', disk])
      expect(result.stderr, `run ${run}`).toBe('')
      expect(result.code, `run ${run}`).toBe(0)
      expect(existsSync(disk)).toBe(true)
      // Node 22.1+ uses its own compile cache instead (main.ts): no file of ours there.
      if (process.versions.node.startsWith('20.')) expect(cacheFiles()).toHaveLength(1)
    }
  })
})
