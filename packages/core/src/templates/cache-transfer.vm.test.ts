import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { cacheDir, locateKernel, VM } from '../index.js'
import { runCommand } from '../test-support/run-command.js'

// A CI cache of ~/.cache/vmctl, made on one runner and restored on the next under another $HOME:
// saved and restored the way actions/cache does it (GNU tar --posix, zstd; no --sparse), so a
// template's sparse RAM file comes back dense. zstd is on GitHub's and GitLab's runners; here:
// apt-get install zstd.
const work = mkdtempSync(join(tmpdir(), 'vmctl-cache-transfer-'))
const saved = { XDG_CACHE_HOME: process.env.XDG_CACHE_HOME, VMCTL_CACHE_DIR: process.env.VMCTL_CACHE_DIR }
function restoreCacheEnv(): void {
  for (const [name, value] of Object.entries(saved))
    if (value === undefined) delete process.env[name]
    else process.env[name] = value
}
afterAll(() => {
  restoreCacheEnv()
  rmSync(work, { recursive: true, force: true })
})

const MiB = 2 ** 20
/** Bytes on disk (allocated blocks), as `du` counts them. */
// Async: a tar and zstd of a cache take minutes on a loaded host, and a worker blocked that long
// fails the run (test-support/run-command.ts).
const du = async (path: string) => Number((await runCommand('du', ['-sB1', path])).stdout.split('\t')[0])
const sh = (script: string) => runCommand('sh', ['-ec', script])

/** The cache's built artifacts (initramfs, runtime disk) by name and inode: a rebuild changes it. */
function artifacts(cache: string): string[] {
  return ['initramfs', 'runtime'].flatMap((dir) =>
    readdirSync(join(cache, dir))
      .filter((name) => /\.(cpio|ext4)$/.test(name))
      .map((name) => `${dir}/${name}@${statSync(join(cache, dir, name)).ino}`),
  )
}

describe('a cache moved to another host (vm)', () => {
  test('saved with tar and zstd, restored under another $HOME: its template is reused, nothing is rebuilt, and it costs at most 1.2x its du', {
    timeout: 900_000,
  }, async () => {
    await expect(sh('command -v zstd'), 'zstd is missing: apt-get install zstd').resolves.toBeDefined()
    // A retry starts where the run did: with vmctl's own cache, and the runners' homes gone.
    restoreCacheEnv()
    rmSync(join(work, 'runner-a'), { recursive: true, force: true })
    rmSync(join(work, 'runner-b'), { recursive: true, force: true })
    // A new cache holding only the kernel (copied: no download), as on a first CI run.
    const kernel = locateKernel()
    const kernelDir = realpathSync(dirname(kernel.image))
    expect(kernel.source, 'this test copies the kernel from vmctl cache (run pnpm setup)').toBe('cache')
    const homeA = join(work, 'runner-a', 'home')
    const cacheA = join(homeA, '.cache', 'vmctl')
    mkdirSync(join(cacheA, 'kernels'), { recursive: true })
    cpSync(kernelDir, join(cacheA, 'kernels', basename(kernelDir)), {
      recursive: true,
      verbatimSymlinks: true,
    })
    symlinkSync(basename(kernelDir), join(cacheA, 'kernels', 'default'))
    // The KVM verdict of this host too (a runner probes its own; here it saves an 8 s probe).
    const verdict = join(cacheDir(), 'kvm-verdict.json')
    if (existsSync(verdict)) cpSync(verdict, join(cacheA, 'kvm-verdict.json'))
    delete process.env.VMCTL_CACHE_DIR
    process.env.XDG_CACHE_HOME = join(homeA, '.cache')
    expect(cacheDir()).toBe(cacheA)

    const definition = {} // the default VM: a 1 GiB RAM file, ~190 MB of it touched
    let key: string
    {
      await using vm = await VM.up(definition)
      expect(vm.template?.made).toBe(true)
      key = vm.template!.key
      expect((await vm.exec('ls /lib/modules/$(uname -r)/kernel >/dev/null && echo modules')).stdout).toBe(
        'modules\n',
      )
    }
    const duBefore = await du(cacheA)

    // Saved as actions/cache saves it; the first runner's home is gone afterwards.
    const archive = join(work, 'cache.tzst')
    await sh(`tar --posix -C '${homeA}' -cf - .cache | zstd -q -T0 -o '${archive}'`)
    const archiveBytes = statSync(archive).size
    rmSync(join(work, 'runner-a'), { recursive: true, force: true })

    const homeB = join(work, 'runner-b', 'users', 'ci')
    const cacheB = join(homeB, '.cache', 'vmctl')
    mkdirSync(homeB, { recursive: true })
    await sh(`zstd -q -dc '${archive}' | tar -C '${homeB}' -xf -`)
    rmSync(archive)
    const duRestored = await du(cacheB)
    process.env.XDG_CACHE_HOME = join(homeB, '.cache')
    const builtBefore = artifacts(cacheB)

    {
      await using vm = await VM.up(definition)
      expect(vm.template, 'the restored template is used, not made again').toEqual({ key, made: false })
      // The guest's kernel command line (saved in the template) names runner A's module tree; the
      // refresh told it where the modules are now.
      expect((await vm.exec('ls /lib/modules/$(uname -r)/kernel >/dev/null && echo modules')).stdout).toBe(
        'modules\n',
      )
    }
    expect(artifacts(cacheB), 'no initramfs or runtime disk was rebuilt').toEqual(builtBefore)
    expect(readdirSync(join(cacheB, 'templates'))).toEqual([key])
    const duUsed = await du(cacheB)

    console.log(
      `cache moved between hosts: du ${(duBefore / MiB).toFixed(0)} MiB, archive (tar --posix | zstd) ${(archiveBytes / MiB).toFixed(0)} MiB, du restored ${(duRestored / MiB).toFixed(0)} MiB, du after the first VM.up ${(duUsed / MiB).toFixed(0)} MiB`,
    )
    expect(archiveBytes).toBeLessThanOrEqual(1.2 * duBefore)
    expect(duUsed).toBeLessThanOrEqual(1.2 * duBefore)

    // The template made sparse again still restores.
    await using again = await VM.up(definition)
    expect(again.template).toEqual({ key, made: false })
  })
})
