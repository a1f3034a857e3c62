import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, describe, expect, test } from 'vitest'

// What each package's tarball holds, packed by pnpm as a release would be (after `pnpm build`).
// Here, in the CLI, because it is the package that depends on all the others but the adapters.
const packages = fileURLToPath(new URL('../../', import.meta.url))
const out = mkdtempSync(join(tmpdir(), 'vmctl-pack-'))
afterAll(() => rmSync(out, { recursive: true, force: true }))
// Async: six pnpm packs take minutes on a loaded host, and a worker blocked that long misses
// vitest's RPC and fails the run ("Timeout calling onTaskUpdate") though its tests passed.
const run = promisify(execFile)

async function packed(dir: string): Promise<{ files: string[]; tarball: string }> {
  // The tests run one after another: the one new file in `out` is this pack's.
  const before = new Set(readdirSync(out))
  await run('pnpm', ['pack', '--pack-destination', out], { cwd: join(packages, dir) })
  const tarball = join(out, readdirSync(out).find((name) => !before.has(name))!)
  const files = (await run('tar', ['tzf', tarball], { maxBuffer: 1 << 26 })).stdout
    .split('\n')
    .filter(Boolean)
    .map((path) => path.replace(/^package\//, ''))
  return { files, tarball }
}

/** Packed files that import a test runner: test helpers compiled by mistake (only adapters may). */
async function importingTestRunners(tarball: string): Promise<string[]> {
  const unpacked = mkdtempSync(join(out, 'unpacked-'))
  await run('tar', ['xzf', tarball, '-C', unpacked])
  const pattern = `from ['"](vitest|jest|@jest/[a-z-]+)['"]`
  try {
    return (
      await run('grep', ['-rlE', '--include=*.js', '--include=*.cjs', '--include=*.mjs', pattern, '.'], {
        cwd: join(unpacked, 'package'),
        maxBuffer: 1 << 26,
      })
    ).stdout
      .split('\n')
      .filter(Boolean)
      .map((path) => path.replace(/^\.\//, ''))
  } catch {
    return [] // grep exits 1 when nothing matches
  }
}

describe('published packages', () => {
  test.each(['agent', 'core', 'cli', 'testing', 'vitest-adapter', 'jest-adapter'])(
    '%s ships its README, LICENSE and dist, and no tests, source maps or sources',
    async (dir) => {
      const { files, tarball } = await packed(dir)
      expect(files).toEqual(expect.arrayContaining(['README.md', 'LICENSE', 'package.json']))
      const unwanted = files.filter(
        (file) =>
          /\.(test|nested|typecheck)\.|\.map$|test-support\//.test(file) ||
          !/^(dist\/|README\.md$|LICENSE$|package\.json$)/.test(file),
      )
      expect(unwanted).toEqual([])
      // Test helpers compiled by mistake: named test-* (images/test-images.ts shipped once; only
      // @vmctl/testing's test-vm is public), or importing a test runner (only adapters may).
      if (dir !== 'testing') expect(files.filter((file) => /(^|\/)test-[^/]*$/.test(file))).toEqual([])
      const adapter = dir === 'vitest-adapter' || dir === 'jest-adapter'
      if (!adapter) expect(await importingTestRunners(tarball)).toEqual([])
      if (dir === 'agent') {
        // Prebuilt: a user needs no C compiler. Their mode does not matter (pnpm pack drops the
        // execute bit): the runtime disk sets it.
        expect(files).toEqual(
          expect.arrayContaining(['dist/guest-setup', 'dist/vsock-bridge', 'dist/agent.cjs']),
        )
      }
      if (dir === 'core') expect(files).toContain('dist/supervisor.cjs')
    },
    60_000,
  )
})
