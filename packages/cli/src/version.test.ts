import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
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
  })
})
