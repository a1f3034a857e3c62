import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'

// What each package's tarball holds, packed by pnpm as a release would be (after `pnpm build`).
// Here, in the CLI, because it is the package that depends on all the others but the adapters.
const packages = fileURLToPath(new URL('../../', import.meta.url))
const out = mkdtempSync(join(tmpdir(), 'vmctl-pack-'))
afterAll(() => rmSync(out, { recursive: true, force: true }))

function packed(dir: string): { files: string[]; tarball: string } {
  const before = new Set(readdirSync(out))
  execFileSync('pnpm', ['pack', '--pack-destination', out], { cwd: join(packages, dir), stdio: 'ignore' })
  const tarball = join(out, readdirSync(out).find((name) => !before.has(name))!)
  const files = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((path) => path.replace(/^package\//, ''))
  return { files, tarball }
}

/** Packed files that import a test runner: test helpers compiled by mistake (only adapters may). */
function importingTestRunners(tarball: string): string[] {
  const unpacked = mkdtempSync(join(out, 'unpacked-'))
  execFileSync('tar', ['xzf', tarball, '-C', unpacked])
  const pattern = `from ['"](vitest|jest|@jest/[a-z-]+)['"]`
  try {
    return execFileSync(
      'grep',
      ['-rlE', '--include=*.js', '--include=*.cjs', '--include=*.mjs', pattern, '.'],
      {
        cwd: join(unpacked, 'package'),
        encoding: 'utf8',
      },
    )
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
    (dir) => {
      const { files, tarball } = packed(dir)
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
      if (!adapter) expect(importingTestRunners(tarball)).toEqual([])
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
