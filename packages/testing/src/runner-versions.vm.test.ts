import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, test } from 'vitest'
import { type Runner, type RunResult, runnerProject } from './test-support/runner-project.js'

// The adapters under the runner versions users install today, each in a project of its own outside
// the workspace with the runner's default config (5 s test timeout), run from outside.
// `pnpm test:runners` (VMCTL_RUNNER_VERSIONS=all) runs every test on every supported version
// (vitest 5 where Node is 22 or later, as vitest 5 requires), and type-checks the README test
// against each vitest. `pnpm test` runs what nothing else in it shows: the versions the workspace
// does not run (it runs vitest 4 and jest 30, and e2e/install-from-npm.vm.test.ts installs the
// latest of each from the tarballs, the README's test booting cold under vitest's default timeout,
// the timeouts file under vitest's default config), and of the tests the README one and the hang;
// the line a host without QEMU prints is checked on the workspace's runners (vitest-adapter
// runs.vm.test.ts, jest-adapter jest.vm.test.ts).
const all = process.env.VMCTL_RUNNER_VERSIONS === 'all'
const node22 = Number(process.versions.node.split('.')[0]) >= 22
const versions: Array<[Runner, string]> = all
  ? [
      ['vitest', '3.2'],
      ['vitest', '4'],
      ...(node22 ? [['vitest', '5'] as [Runner, string]] : []),
      ['jest', '29'],
      ['jest', '30'],
    ]
  : [
      ['vitest', '3.2'],
      ['jest', '29'],
    ]

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))
const files = {
  vitest: {
    readme: here('../../vitest-adapter/test/runner-project/readme.test.ts'),
    hang: here('../../vitest-adapter/test/runner-project/hang.test.ts'),
    timeouts: here('../../vitest-adapter/test/runner-project/timeouts.test.ts'),
    ext: 'ts',
  },
  jest: {
    readme: here('../../jest-adapter/test/runner-project/readme.test.js'),
    hang: here('../../jest-adapter/test/runner-project/hang.test.js'),
    ext: 'js',
  },
}

/** The one line a run that skips prints: the whole reason and the fix. */
const SKIP_LINE = /^vmctl: skipping VM tests, this host cannot run VMs: (.*)$/gm

function noWarnings({ output }: RunResult): void {
  expect(output).not.toMatch(/deprecat/i)
  expect(output).not.toMatch(/timed out/i)
}

// A first install of a runner takes a minute, and a cold boot on a busy TCG host a few.
const TIMEOUT = 10 * 60_000

// Every version's project is set up at once (npm installs wait on the network more than on the
// CPU); the tests run one version after another (a version's tests at once): they boot VMs under TCG.
beforeAll(() => {
  for (const [runner, major] of versions) runnerProject(runner, major).catch(() => {}) // a test awaits it
})

describe.each(versions)('%s %s as installed by npm (vm)', (runner, major) => {
  test.concurrent(
    'a README test with a cold VM boot passes under the default timeout, without warnings',
    async () => {
      const project = await runnerProject(runner, major)
      const set = files[runner]
      const started = Date.now()
      const result = await project.run(
        {
          [`readme.test.${set.ext}`]: set.readme,
          ...('timeouts' in set ? { 'timeouts.test.ts': set.timeouts } : {}),
        },
        { VMCTL_TEMPLATES: '0' }, // a cold boot: ~10 s under TCG, twice the default timeout
      )
      console.log(
        `${runner} ${project.version}: README test run with a cold boot in ${Date.now() - started} ms`,
      )
      expect(result.code, result.output).toBe(0)
      noWarnings(result)
      if (runner === 'vitest') {
        expect(result.output).toMatch(/Test Files\s+2 passed \(2\)/)
        expect(result.output).toMatch(/Tests\s+1[56] passed/) // vitest 4 counts the todo apart, 3.2 as skipped
        expect(result.output).not.toMatch(/\d+ failed/)
      } else expect(result.output).toMatch(/Tests:\s+1 passed, 1 total/)
    },
    TIMEOUT,
  )

  test.concurrent(
    "a boot that hangs fails with vmctl's BootTimeoutError, not the runner's timeout",
    async () => {
      const project = await runnerProject(runner, major)
      const set = files[runner]
      const result = await project.run({ [`hang.test.${set.ext}`]: set.hang }, { VMCTL_TEMPLATES: '0' })
      expect(result.code, result.output).not.toBe(0)
      // A user's -S is refused at once now (before jest's 5 s), so the hang is a migration never sent.
      expect(result.output).toMatch(/BootTimeoutError|did not become ready within 8 s|hung twice/)
      expect(result.output).not.toMatch(/timed out in \d+ms|Exceeded timeout/i)
    },
    TIMEOUT,
  )

  // A minute or more of CPU under load: in the full run only (the workspace type-checks against 3.2).
  test.runIf(all && runner === 'vitest').concurrent(
    'the README test type-checks under nodenext + strict',
    async () => {
      const project = await runnerProject(runner, major)
      const { readme, timeouts } = files.vitest
      const result = await project.typecheck({ 'readme.test.ts': readme, 'timeouts.test.ts': timeouts })
      expect(result.code, result.output).toBe(0)
    },
    TIMEOUT,
  )

  test.runIf(all).concurrent(
    'a host without QEMU: one line per run with the whole reason and the fix; VMCTL_REQUIRE=1 fails',
    async () => {
      const project = await runnerProject(runner, major)
      const set = files[runner]
      const two = { [`a.test.${set.ext}`]: set.readme, [`b.test.${set.ext}`]: set.readme }
      const broken = { VMCTL_QEMU: '/nonexistent/qemu' }
      const skipped = await project.run(two, broken)
      expect(skipped.code, skipped.output).toBe(0)
      noWarnings(skipped)
      const lines = [...skipped.output.matchAll(SKIP_LINE)].map((m) => m[1]!)
      expect(lines, skipped.output).toHaveLength(1)
      expect(lines[0]).toMatch(
        /^VMCTL_QEMU=\/nonexistent\/qemu was not found in PATH \(.*\)\. Fix: install QEMU .*\(VMCTL_REQUIRE=1 fails them instead\)$/,
      )
      expect(skipped.output).toMatch(
        runner === 'vitest' ? /Tests\s+2 skipped \(2\)/ : /Tests:\s+2 skipped, 2 total/,
      )

      const required = await project.run(two, { ...broken, VMCTL_REQUIRE: '1' })
      expect(required.code).not.toBe(0)
      expect(required.output).toContain('VMCTL_REQUIRE=1 is set: VMCTL_QEMU=/nonexistent/qemu was not found')
    },
    TIMEOUT,
  )
})
