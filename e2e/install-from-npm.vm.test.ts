import { execFile } from 'node:child_process'
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'

// A user who never clones vmctl: every package packed as a release would pack it (pnpm pack: pnpm
// publish packs the same way, turning workspace:* into versions), the tarballs installed with npm
// into a fresh project outside the workspace, an empty XDG_CACHE_HOME (so the kernel is fetched
// as a user's would be), and the README's own test files run there under default configurations.
// The runners are the latest: the README's vitest test makes the first VM (a cold boot) under
// vitest's default 5 s timeout. VMCTL_E2E_NODE (a directory holding a `node`) puts another Node
// first on the user's PATH, so that npm, the runners and vmctl run under it: `pnpm
// test:node-versions` runs this file so under each Node release the README names
// (scripts/test-node-versions.mjs).
const root = fileURLToPath(new URL('..', import.meta.url))
const readme = readFileSync(join(root, 'README.md'), 'utf8')

/** The code block of the README's "Install in your project" section whose first line names `file`. */
function readmeFile(file: string): string {
  const section = readme.slice(readme.indexOf('## Install in your project'), readme.indexOf('## Quick start'))
  const block = [...section.matchAll(/```(?:ts|js)\n([\s\S]*?)```/g)]
    .map((match) => match[1]!)
    .find((code) => code.startsWith(`// ${file}\n`))
  if (!block) throw new Error(`README.md's "Install in your project" has no ${file} block`)
  return block
}

interface Ran {
  code: number
  output: string
  seconds: number
}

let work: string
let env: NodeJS.ProcessEnv
const userNode = process.env.VMCTL_E2E_NODE
const projects = { vitest: '', jest: '' }

function run(command: string, args: string[], cwd: string): Promise<Ran> {
  const started = performance.now()
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0
      const seconds = (performance.now() - started) / 1000
      resolve({ code, output: `${stdout}\n${stderr}`, seconds })
    })
  })
}

/**
 * A project that runs `npm i -D ADAPTER RUNNER` as the README says. The adapter comes from its
 * tarball; npm's overrides point the packages it depends on (not on the registry) at theirs.
 */
async function userProject(name: string, adapter: string, runner: string, tarballs: Map<string, string>) {
  const dir = join(work, name)
  mkdirSync(dir)
  const overrides = Object.fromEntries(
    [...tarballs].filter(([pkg]) => pkg !== adapter).map(([pkg, file]) => [pkg, `file:${file}`]),
  )
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: `${name}-project`, private: true, overrides }),
  )
  const installed = await run(
    'npm',
    ['i', '-D', '--no-audit', '--no-fund', tarballs.get(adapter)!, runner],
    dir,
  )
  expect(installed.code, installed.output).toBe(0)
  return dir
}

/** The version of `pkg` that npm installed in `project`. */
function versionIn(project: string, pkg: string): string {
  return JSON.parse(readFileSync(join(project, 'node_modules', pkg, 'package.json'), 'utf8')).version
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'vmctl-npm-'))
  const tarballDir = join(work, 'tarballs')
  // The user's environment, not the workspace's: no vitest/turbo variables, no cache overrides.
  env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) =>
        !/^(VITEST|TURBO|npm_|PNPM|NODE_OPTIONS$|VMCTL_(CACHE_DIR|KERNEL|TEMPLATES|ACCEL)$)/i.test(name) &&
        name !== 'TEST' &&
        name !== 'NODE_ENV',
    ),
  ) as NodeJS.ProcessEnv
  env.XDG_CACHE_HOME = join(work, 'cache')
  if (userNode) env.PATH = `${userNode}${delimiter}${env.PATH}`
  env.CI = '1'
  env.NO_COLOR = '1'
  env.FORCE_COLOR = '0'
  const packed = await run(
    'pnpm',
    ['-r', '--filter', './packages/*', 'pack', '--pack-destination', tarballDir],
    root,
  )
  expect(packed.code, packed.output).toBe(0)
  const tarballs = new Map<string, string>()
  for (const file of readdirSync(tarballDir)) {
    const path = join(tarballDir, file)
    const listed = await run('tar', ['-xOzf', path, 'package/package.json'], work)
    tarballs.set(JSON.parse(listed.output).name, path)
  }
  expect([...tarballs.keys()].sort()).toEqual([
    '@vmctl/agent',
    '@vmctl/core',
    '@vmctl/jest',
    '@vmctl/testing',
    '@vmctl/vitest',
    'vmctl',
  ])
  ;[projects.vitest, projects.jest] = await Promise.all([
    userProject('vitest', '@vmctl/vitest', 'vitest', tarballs),
    userProject('jest', '@vmctl/jest', 'jest', tarballs),
  ])
  writeFileSync(join(projects.vitest, 'vm.test.ts'), readmeFile('vm.test.ts'))
  // And the timeout each way of registering a test ends up with under vitest's default config, on
  // the latest vitest (packages/testing's runner-versions test checks it on the others).
  copyFileSync(
    join(root, 'packages/vitest-adapter/test/runner-project/timeouts.test.ts'),
    join(projects.vitest, 'timeouts.test.ts'),
  )
  writeFileSync(join(projects.jest, 'vm.test.js'), readmeFile('vm.test.js'))
}, 300_000)

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})

describe('vmctl installed from npm tarballs into a fresh project (vm)', () => {
  const times: Record<string, number[]> = { vitest: [], jest: [], vmctl: [] }

  async function readmeRun(): Promise<void> {
    const vitest = await run('npx', ['vitest', 'run'], projects.vitest)
    expect(vitest.code, vitest.output).toBe(0)
    expect(vitest.output).toMatch(/Test Files\s+2 passed \(2\)/)
    expect(vitest.output).toMatch(/Tests\s+15 passed/) // the README's 1, the timeouts file's 14
    expect(vitest.output).not.toMatch(/deprecat/i)
    const jest = await run('npx', ['jest'], projects.jest)
    expect(jest.code, jest.output).toBe(0)
    expect(jest.output).toMatch(/1 passed/)
    const vmctl = await run('npx', ['vmctl', 'run', '--', 'uname', '-r'], projects.vitest)
    expect(vmctl.code, vmctl.output).toBe(0)
    expect(vmctl.output).toMatch(/^\d+\.\d+\.\d+\S*-amd64$/m)
    times.vitest!.push(vitest.seconds)
    times.jest!.push(jest.seconds)
    times.vmctl!.push(vmctl.seconds)
  }

  test('the README files pass on an empty cache (the kernel is fetched), and again from the cache', async () => {
    const node = await run('node', ['-p', 'process.execPath + " " + process.version'], projects.vitest)
    expect(node.code, node.output).toBe(0)
    if (userNode) expect(node.output.trim().split(' ')[0]).toBe(join(userNode, 'node'))
    await readmeRun()
    await readmeRun()
    const setup = await run('npx', ['vmctl', 'setup'], projects.jest)
    expect(setup.code, setup.output).toBe(0)
    expect(setup.output).toMatch(/^ok +kernel +\S+ in .* \(cached\)$/m)
    expect(setup.output).toContain('vmctl is ready')
    const version = await run('npx', ['vmctl', '--version'], projects.vitest)
    expect(version.output).toMatch(/^vmctl \d+\.\d+\.\d+/m)
    const line = (name: string) => `${name} ${times[name]!.map((s) => `${s.toFixed(1)} s`).join(' then ')}`
    const runners = `vitest ${versionIn(projects.vitest, 'vitest')}, jest ${versionIn(projects.jest, 'jest')}`
    console.log(
      `installed from npm, Node ${node.output.trim().split(' ')[1]}, ${runners}: ${['vitest', 'jest', 'vmctl'].map(line).join('; ')}`,
    )
  }, 900_000)
})
