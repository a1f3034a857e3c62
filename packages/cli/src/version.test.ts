import { execFileSync, spawnSync } from 'node:child_process'
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, test, vi } from 'vitest'
import { runCli } from './run-cli.js'

const own = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version as string

afterEach(() => {
  vi.restoreAllMocks()
})

describe('vmctl --version', () => {
  test('--version and -v print the version from package.json and exit 0', async () => {
    const printed: string[] = []
    vi.spyOn(console, 'log').mockImplementation((line: string) => printed.push(line))
    expect(await runCli(['--version'])).toBe(0)
    expect(await runCli(['-v'])).toBe(0)
    // In this workspace the CLI and core are released together, so one version is shown.
    expect(printed).toEqual([`vmctl ${own}`, `vmctl ${own}`])
  })

  test('the vmctl command answers --version before it loads its bundle, with the same text', () => {
    const cli = fileURLToPath(new URL('../dist/main.js', import.meta.url))
    for (const flag of ['--version', '-v'])
      expect(execFileSync(process.execPath, [cli, flag], { encoding: 'utf8' })).toBe(`vmctl ${own}\n`)
    // A copy of the package whose bundle throws when loaded: --version still answers, --help
    // (which needs the bundle) does not. Inside dist/, so that @vmctl/core resolves as from the
    // package, and git ignores it.
    const dist = fileURLToPath(new URL('../dist/', import.meta.url))
    const copy = mkdtempSync(join(dist, '.version-test-'))
    try {
      copyFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), join(copy, 'package.json'))
      // main.js and what it imports before the bundle (early-supervisor.js, version.js): the top level.
      mkdirSync(join(copy, 'dist'))
      for (const file of readdirSync(dist))
        if (file.endsWith('.js')) copyFileSync(join(dist, file), join(copy, 'dist', file))
      writeFileSync(join(copy, 'dist', 'cli-main.cjs'), "throw new Error('the bundle was loaded')\n")
      const run = (flag: string) =>
        spawnSync(process.execPath, [join(copy, 'dist', 'main.js'), flag], {
          encoding: 'utf8',
          env: { ...process.env, VMCTL_CACHE_DIR: join(copy, 'cache') },
        })
      expect(run('--version')).toMatchObject({ status: 0, stdout: `vmctl ${own}\n` })
      expect(run('--help').stderr).toContain('the bundle was loaded')
    } finally {
      rmSync(copy, { recursive: true, force: true })
    }
  })
})
