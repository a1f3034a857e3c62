/**
 * A project outside the workspace with one version of a test runner and the vmctl packages
 * installed by npm from tarballs, as a user would have them: for tests of the adapters against the
 * runner versions users install today (src/runner-versions.vm.test.ts in the adapters).
 *
 * The project lives in the temp directory keyed by runner and version, so that the runner's npm
 * install (20-40 s) is paid once per machine; the vmctl tarballs are packed and installed afresh on
 * each use, and a failed install removes the project. Test files are written in for one run and
 * removed after it.
 */
import { execFile } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const packagesDir = fileURLToPath(new URL('../../../', import.meta.url))

export type Runner = 'vitest' | 'jest'

export interface RunResult {
  code: number
  output: string
}

export interface RunnerProject {
  dir: string
  /** The runner's version as installed (e.g. 4.1.12). */
  version: string
  /** Runs the runner in the project on the given test files (name: source path), removed after. */
  run(files: Record<string, string>, env?: Record<string, string>): Promise<RunResult>
  /** Type-checks the given TypeScript files as a user's project would: nodenext, strict. */
  typecheck(files: Record<string, string>): Promise<RunResult>
}

// The workspace's TypeScript: the project checks what it installed, with a compiler of its time.
const tsc = fileURLToPath(new URL('../../../../node_modules/typescript/bin/tsc', import.meta.url))
const TSCONFIG = {
  compilerOptions: {
    module: 'nodenext',
    moduleResolution: 'nodenext',
    target: 'es2022',
    strict: true,
    noEmit: true,
    skipLibCheck: false,
    types: [],
  },
  include: ['*.ts'],
}

async function outcome(pending: Promise<{ stdout: string; stderr: string }>): Promise<RunResult> {
  const result = await pending.then(
    (r) => ({ ...r, code: 0 }),
    (e: { stdout: string; stderr: string; code: number }) => e,
  )
  return { code: result.code, output: `${result.stdout}\n${result.stderr}` }
}

/** The workspace packages a project of `runner` installs (the adapter and what it depends on). */
const PACKAGES: Record<Runner, string[]> = {
  vitest: ['agent', 'core', 'cli', 'testing', 'vitest-adapter'],
  jest: ['agent', 'core', 'cli', 'testing', 'jest-adapter'],
}

async function npm(cwd: string, args: string[]): Promise<void> {
  await run('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], {
    cwd,
    maxBuffer: 16 * 1024 * 1024,
  })
}

const projects = new Map<string, Promise<RunnerProject>>()

/**
 * `runner@major` (plus jest-environment-node of the same major for jest) in its cached project; set
 * up once per process, so that the tests of one version can share it.
 */
export function runnerProject(runner: Runner, major: string): Promise<RunnerProject> {
  const key = `${runner}-${major}`
  let project = projects.get(key)
  if (!project) {
    project = setUp(runner, major)
    project.catch(() => projects.delete(key))
    projects.set(key, project)
  }
  return project
}

async function setUp(runner: Runner, major: string): Promise<RunnerProject> {
  const dir = join(tmpdir(), 'vmctl-runner-projects', `${runner}-${major}`)
  const installed = join(dir, 'node_modules', runner, 'package.json')
  try {
    if (!existsSync(installed)) {
      rmSync(dir, { recursive: true, force: true })
      mkdirSync(dir, { recursive: true })
      const type = runner === 'jest' ? 'commonjs' : 'module'
      writeFileSync(
        join(dir, 'package.json'),
        JSON.stringify({ name: 'runner-project', private: true, type }),
      )
      const specs =
        runner === 'jest' ? [`jest@${major}`, `jest-environment-node@${major}`] : [`vitest@${major}`]
      await npm(dir, ['install', '--save-dev', ...specs])
    }
    const packs = join(dir, 'packs')
    rmSync(packs, { recursive: true, force: true })
    mkdirSync(packs)
    // pnpm packs as a release would (workspace:* becomes the version).
    await Promise.all(
      PACKAGES[runner].map((name) =>
        run('pnpm', ['pack', '--pack-destination', packs], { cwd: join(packagesDir, name) }),
      ),
    )
    const tarballs = readdirSync(packs).map((file) => `./packs/${file}`)
    // As packed: pnpm pack drops the native helpers' execute bit, and vmctl must not need it.
    await npm(dir, ['install', ...tarballs])
  } catch (error) {
    rmSync(dir, { recursive: true, force: true }) // no cache of a failed install
    throw error
  }
  const { version } = JSON.parse(readFileSync(installed, 'utf8')) as { version: string }

  return {
    dir,
    version,
    async run(files, env = {}) {
      // A directory per run, named as the filter of what to run: runs may share the project at once.
      const runDir = mkdtempSync(join(dir, 'run-'))
      for (const [name, source] of Object.entries(files)) copyFileSync(source, join(runDir, name))
      const filter = `${basename(runDir)}/`
      const bin =
        runner === 'vitest'
          ? [join(dir, 'node_modules/vitest/vitest.mjs'), 'run', filter]
          : [join(dir, 'node_modules/jest/bin/jest.js'), '--ci', filter]
      try {
        return await outcome(
          run(process.execPath, bin, {
            cwd: dir,
            env: {
              ...process.env,
              NODE_OPTIONS: undefined,
              ...env,
              CI: '1',
              NO_COLOR: '1',
              FORCE_COLOR: '0',
            },
            maxBuffer: 16 * 1024 * 1024,
          }),
        )
      } finally {
        rmSync(runDir, { recursive: true, force: true })
      }
    },
    async typecheck(files) {
      const checkDir = mkdtempSync(join(dir, 'types-'))
      try {
        for (const [name, source] of Object.entries(files)) copyFileSync(source, join(checkDir, name))
        writeFileSync(join(checkDir, 'tsconfig.json'), JSON.stringify(TSCONFIG))
        return await outcome(run(process.execPath, [tsc, '-p', checkDir], { cwd: checkDir }))
      } finally {
        rmSync(checkDir, { recursive: true, force: true })
      }
    },
  }
}
