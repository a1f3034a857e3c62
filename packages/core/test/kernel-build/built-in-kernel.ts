import { createHash } from 'node:crypto'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { availableParallelism, loadavg } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execa } from 'execa'
import { withLock } from '../../src/host/cross-process-lock.js'
import { which } from '../../src/host/qemu-locator.js'
import { archiveSources, downloadPackage, findInArchive } from '../../src/kernels/debian-archive.js'

/**
 * A guest kernel built from Debian's `linux-source-6.1` with every driver vmctl needs built in and
 * no module support at all: `make tinyconfig`, then the options of vmctl.config beside this file.
 * Built once into `$CACHE/kernel-build/VERSION-CONFIGHASH/` (bzImage, config, release, build.json
 * with the phases' times); a failed build leaves nothing there. Minutes of CPU: `pnpm
 * test:kernel-build` only, never `pnpm test`.
 */

export const SOURCE_PACKAGE = 'linux-source-6.1'
export const CONFIG_FRAGMENT = fileURLToPath(new URL('./vmctl.config', import.meta.url))

/** Debian package names of what a kernel build needs beyond gcc and make, by the file that shows each. */
const BUILD_DEPENDENCIES: Array<{ package: string; present: () => boolean }> = [
  { package: 'flex', present: () => onPath('flex') },
  { package: 'bison', present: () => onPath('bison') },
  { package: 'bc', present: () => onPath('bc') },
  // objtool (x86-64's ORC unwinder) links libelf; scripts/extract-cert and sign-file need OpenSSL.
  { package: 'libelf-dev', present: () => existsSync('/usr/include/gelf.h') },
  { package: 'libssl-dev', present: () => existsSync('/usr/include/openssl/ssl.h') },
  { package: 'gcc', present: () => onPath('gcc') },
  { package: 'make', present: () => onPath('make') },
  { package: 'xz-utils', present: () => onPath('xz') },
  { package: 'binutils', present: () => onPath('ar') },
]

export interface BuiltKernel {
  dir: string
  bzImage: string
  release: string
  /** Whether this call built it (false: the cache had it). */
  built: boolean
  timings: BuildTimings
}

export interface BuildTimings {
  sourceVersion: string
  /** Seconds of wall time per phase, and the load average around the build (the host is shared). */
  downloadS: number
  unpackS: number
  configureS: number
  buildS: number
  jobs: number
  loadBefore: number
  loadAfter: number
}

type Say = (line: string) => void

/** The cached kernel for the archive's current linux-source-6.1 and this config, built when missing. */
export async function ensureBuiltInKernel(
  cacheDir: string,
  say: Say = (line) => process.stderr.write(`kernel-build: ${line}\n`),
  env: NodeJS.ProcessEnv = process.env,
): Promise<BuiltKernel> {
  const found = await findInArchive(archiveSources(env), SOURCE_PACKAGE)
  if (!found)
    throw new Error(
      `${SOURCE_PACKAGE} is in neither bookworm-security nor bookworm: check VMCTL_DEBIAN_MIRROR`,
    )
  const version = found.stanza.get('Version')!
  const fragment = readFileSync(CONFIG_FRAGMENT, 'utf8')
  const key = `${version}-${createHash('sha256').update(fragment).digest('hex').slice(0, 12)}`
  const base = join(cacheDir, 'kernel-build')
  const dir = join(base, key)
  const cached = readBuilt(dir)
  if (cached) return cached
  return withLock(
    `vmctl-kernel-build-${createHash('sha256').update(base).digest('hex').slice(0, 16)}`,
    async () => {
      const again = readBuilt(dir)
      if (again) return again
      checkBuildDependencies()
      mkdirSync(base, { recursive: true })
      // Under the lock, a stage directory is a killed build's (1.5 GB of source and objects).
      for (const entry of readdirSync(base))
        if (entry.startsWith('.stage-')) rmSync(join(base, entry), { recursive: true, force: true })
      // Source, objects and outputs live in one stage directory until the build succeeds.
      const stage = mkdtempSync(join(base, '.stage-'))
      try {
        const timings = await build(stage, version, say, async (deb) => downloadPackage(found, deb))
        writeFileSync(join(stage, 'out', 'build.json'), `${JSON.stringify(timings, null, 2)}\n`)
        writeFileSync(join(stage, 'out', '.complete'), '')
        rmSync(dir, { recursive: true, force: true })
        renameSync(join(stage, 'out'), dir)
        const result = readBuilt(dir)!
        return { ...result, built: true }
      } finally {
        rmSync(stage, { recursive: true, force: true })
      }
    },
    () => say('waiting for another process building the same kernel'),
  )
}

function readBuilt(dir: string): BuiltKernel | undefined {
  if (!existsSync(join(dir, '.complete'))) return undefined
  return {
    dir,
    bzImage: join(dir, 'bzImage'),
    release: readFileSync(join(dir, 'release'), 'utf8').trim(),
    built: false,
    timings: JSON.parse(readFileSync(join(dir, 'build.json'), 'utf8')) as BuildTimings,
  }
}

/** One error naming every missing build dependency and the apt-get line that installs them. */
export function checkBuildDependencies(): void {
  const missing = BUILD_DEPENDENCIES.filter((d) => !d.present()).map((d) => d.package)
  if (missing.length)
    throw new Error(
      `building the test kernel needs ${missing.join(', ')}, which this host lacks. Fix: apt-get install ${missing.join(' ')} (as root), then run pnpm test:kernel-build again`,
    )
}

async function build(
  stage: string,
  version: string,
  say: Say,
  download: (deb: string) => Promise<void>,
): Promise<BuildTimings> {
  const clock = () => performance.now() / 1000
  const deb = join(stage, `${SOURCE_PACKAGE}_${version}_all.deb`)
  const src = join(stage, 'src')
  const out = join(stage, 'out')
  mkdirSync(src)
  mkdirSync(out)

  say(`downloading ${SOURCE_PACKAGE} ${version}`)
  let t = clock()
  await download(deb)
  const downloadS = clock() - t

  say('unpacking the source (1.4 GB)')
  t = clock()
  // The .deb holds usr/src/linux-source-6.1.tar.xz; the host's xz unpacks it several times faster
  // than vmctl's WebAssembly decoder would.
  await execa('bash', [
    '-o',
    'pipefail',
    '-c',
    `ar p "$1" data.tar.xz | xz -dc | tar -xO ./usr/src/${SOURCE_PACKAGE}.tar.xz | xz -dc -T0 | tar -x -C "$2" --strip-components=1`,
    'unpack',
    deb,
    src,
  ])
  rmSync(deb)
  const unpackS = clock() - t

  say('configuring: tinyconfig + vmctl.config')
  t = clock()
  const make = (...args: string[]) => execa('nice', ['-n', '19', 'make', '-C', src, ...args], { all: true })
  await make('tinyconfig')
  await execa(
    'sh',
    [join(src, 'scripts/kconfig/merge_config.sh'), '-m', '-O', src, join(src, '.config'), CONFIG_FRAGMENT],
    {
      cwd: src,
      all: true,
    },
  )
  await make('olddefconfig')
  checkConfigKept(readFileSync(join(src, '.config'), 'utf8'), readFileSync(CONFIG_FRAGMENT, 'utf8'))
  const configureS = clock() - t

  const jobs = availableParallelism()
  const loadBefore = loadavg()[0]!
  say(`building bzImage: nice -n 19 make -j${jobs} (load average ${loadBefore.toFixed(1)})`)
  t = clock()
  try {
    await make(`-j${jobs}`, 'bzImage')
  } catch (error) {
    const all = (error as { all?: string }).all ?? ''
    throw new Error(`the kernel build failed; its last lines:\n${all.split('\n').slice(-30).join('\n')}`)
  }
  const buildS = clock() - t
  const loadAfter = loadavg()[0]!

  copyFileSync(join(src, 'arch/x86/boot/bzImage'), join(out, 'bzImage'))
  // `config` beside the image is where vmctl's kernel-fit check looks first.
  copyFileSync(join(src, '.config'), join(out, 'config'))
  const release = (await make('-s', 'kernelrelease')).stdout.trim()
  writeFileSync(join(out, 'release'), `${release}\n`)
  const round = (s: number) => Math.round(s * 10) / 10
  return {
    sourceVersion: version,
    downloadS: round(downloadS),
    unpackS: round(unpackS),
    configureS: round(configureS),
    buildS: round(buildS),
    jobs,
    loadBefore: round(loadBefore),
    loadAfter: round(loadAfter),
  }
}

/**
 * Kconfig drops an option whose dependencies are not met, silently: every line of the fragment must
 * be in the final .config as written, or the build stops here naming the ones that were not.
 */
export function checkConfigKept(config: string, fragment: string): void {
  const final = new Map<string, string>()
  for (const line of config.split('\n')) {
    const set = /^(CONFIG_\w+)=(.*)$/.exec(line)
    if (set) final.set(set[1]!, set[2]!)
  }
  const lost: string[] = []
  for (const line of fragment.split('\n')) {
    const set = /^(CONFIG_\w+)=(.*)$/.exec(line)
    const unset = /^# (CONFIG_\w+) is not set$/.exec(line)
    if (set && final.get(set[1]!) !== set[2]) lost.push(`${line} (got ${final.get(set[1]!) ?? 'not set'})`)
    if (unset && final.has(unset[1]!)) lost.push(`${line} (got ${final.get(unset[1]!)})`)
  }
  if (lost.length)
    throw new Error(
      `make olddefconfig did not keep ${lost.length} option(s) of vmctl.config (a dependency not enabled):\n  ${lost.join('\n  ')}`,
    )
}

function onPath(binary: string): boolean {
  return Boolean(which(binary, process.env.PATH))
}
