import { join } from 'node:path'
import { KernelFetchError } from '../errors.js'
import { SETUP_COMMAND } from '../paths.js'
import { dependsNames } from './deb822.js'
import {
  type ArchiveSource,
  archiveSources,
  type FoundPackage,
  findInArchive,
  mainMirror,
} from './debian-archive.js'
import {
  type KernelName,
  kernelNameFile,
  metapackageOf,
  suitesOf,
  versionedPackageOf,
} from './kernel-name.js'
import { type CachedKernel, installKernelPackage } from './kernel-package.js'
import { installedNamedKernel, linkName, type Say, stderrSay, withKernelsLock } from './kernel-store.js'

/**
 * The kernel a name stands for, from the cache when the name was resolved before (a newer kernel in
 * the archive does not replace it: `vmctl kernel fetch NAME` does), else looked up in the suite's
 * index and fetched. All kernel fetches of one cache take one cross-process lock: test workers
 * that want the same kernel fetch it once.
 */
export async function ensureNamedKernel(
  cacheDir: string,
  name: KernelName,
  env: NodeJS.ProcessEnv = process.env,
  say: Say = stderrSay,
  options: { refresh?: boolean } = {},
): Promise<CachedKernel> {
  if (!options.refresh) {
    const ready = installedNamedKernel(cacheDir, name)
    if (ready) return ready
  }
  return withKernelsLock(
    cacheDir,
    async () => {
      const ready = options.refresh ? undefined : installedNamedKernel(cacheDir, name)
      if (ready) return ready
      const started = Date.now()
      const found = await findKernelPackage(name, env)
      const kernel = await installKernelPackage(
        join(cacheDir, 'kernels'),
        found,
        env,
        say,
        Date.now() - started,
      )
      linkName(cacheDir, kernelNameFile(name), kernel.release)
      return kernel
    },
    say,
  )
}

/** The sources a name is looked up in, with the mirrors the environment names. */
export function sourcesOf(name: KernelName, env: NodeJS.ProcessEnv): ArchiveSource[] {
  if (!name.backports) return archiveSources(env, name.release)
  return suitesOf(name).map(({ suite }) => ({ mirror: mainMirror(env), suite, env }))
}

/**
 * The versioned package (linux-image-ABI-FLAVOUR) a name stands for. Without a version: the one the
 * flavour's metapackage depends on. With an ABI (`@6.1.0-57`): that package. With a package
 * version (`@6.1.158-1`): the current package, which must have that version (a suite keeps only
 * its current kernel; older ones are on snapshot.debian.org, usable as a path).
 */
export async function findKernelPackage(name: KernelName, env: NodeJS.ProcessEnv): Promise<FoundPackage> {
  const sources = sourcesOf(name, env)
  const where = sources.map((s) => `${s.mirror} ${s.suite}`).join(', ')
  const fail = (reason: string) => new KernelFetchError(where, reason, SETUP_COMMAND)
  if (name.version) {
    const byAbi = await findInArchive(sources, versionedPackageOf(name, name.version))
    if (byAbi) return byAbi
  }
  const meta = await findInArchive(sources, metapackageOf(name))
  const versioned = dependsNames(meta?.stanza.get('Depends')).find((n) => /^linux-image-\d/.test(n))
  const found = versioned ? await findInArchive(sources, versioned) : undefined
  if (!found)
    throw fail(`no ${versioned ?? metapackageOf(name)} in the archive's amd64 main index (for ${name.text})`)
  if (name.version && found.stanza.get('Version') !== name.version)
    throw fail(
      `${name.text}: the archive has neither linux-image-${name.version}-… nor version ${name.version}; it has ${found.name} ${found.stanza.get('Version')} now (a suite keeps only its current kernel: write ${name.text.replace(/@.*/, '')} for it, or download an older .deb from snapshot.debian.org and give its path)`,
    )
  return found
}
