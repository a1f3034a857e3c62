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

function packed(dir: string): string[] {
  const before = new Set(readdirSync(out))
  execFileSync('pnpm', ['pack', '--pack-destination', out], { cwd: join(packages, dir), stdio: 'ignore' })
  const tarball = readdirSync(out).find((name) => !before.has(name))!
  return execFileSync('tar', ['tzf', join(out, tarball)], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((path) => path.replace(/^package\//, ''))
}

describe('published packages', () => {
  test.each(['agent', 'core', 'cli', 'testing', 'vitest-adapter', 'jest-adapter'])(
    '%s ships its README, LICENSE and dist, and no tests, source maps or sources',
    (dir) => {
      const files = packed(dir)
      expect(files).toEqual(expect.arrayContaining(['README.md', 'LICENSE', 'package.json']))
      const unwanted = files.filter(
        (file) =>
          /\.(test|nested|typecheck)\.|\.map$|test-support\//.test(file) ||
          !/^(dist\/|README\.md$|LICENSE$|package\.json$)/.test(file),
      )
      expect(unwanted).toEqual([])
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
