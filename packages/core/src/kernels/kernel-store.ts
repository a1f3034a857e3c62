import { createHash } from 'node:crypto'
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs'
import { join } from 'node:path'
import { withLock } from '../host/cross-process-lock.js'
import { readFirstLine } from '../util/first-line.js'
import { customTreesInUse } from './custom-trees-in-use.js'
import { type KernelName, kernelNameFile, parseKernelName } from './kernel-name.js'
import type { CachedKernel } from './kernel-package.js'

/**
 * The kernels in vmctl's cache, without the network: which names point at which kernel, listing and
 * pruning, and the lock every change to them takes. Fetching is named-kernel.ts's.
 */

export type Say = (line: string) => void
export const stderrSay: Say = (line) => process.stderr.write(`vmctl: ${line}\n`)

/** Where named kernels point: `$CACHE/kernels/names/debian-trixie -> ../6.12.57+deb13-amd64`. */
export function namesDir(cacheDir: string): string {
  return join(cacheDir, 'kernels', 'names')
}

/** The cached kernel a name points at, when it is complete; no network. */
export function installedNamedKernel(cacheDir: string, name: KernelName): CachedKernel | undefined {
  try {
    const target = readlinkSync(join(namesDir(cacheDir), kernelNameFile(name)))
    const release = target.replace(/^\.\.\//, '')
    const dir = join(cacheDir, 'kernels', release)
    if (existsSync(join(dir, '.complete'))) return { release, dir, fetched: false }
  } catch {}
  return undefined
}

/** Runs `work` under the lock that serialises every change to the cache's kernels. */
export async function withKernelsLock<T>(
  cacheDir: string,
  work: () => Promise<T>,
  say: Say = stderrSay,
): Promise<T> {
  const kernels = join(cacheDir, 'kernels')
  mkdirSync(kernels, { recursive: true })
  const lock = `vmctl-kernel-${createHash('sha256').update(kernels).digest('hex').slice(0, 16)}`
  return withLock(lock, work, () => say('waiting for another process fetching a guest kernel'))
}

/** `names/<file> -> ../<release>`, replaced atomically. */
export function linkName(cacheDir: string, file: string, release: string): void {
  const dir = namesDir(cacheDir)
  mkdirSync(dir, { recursive: true })
  const temporary = join(dir, `.${file}-${process.pid}`)
  rmSync(temporary, { force: true })
  symlinkSync(`../${release}`, temporary)
  renameSync(temporary, join(dir, file))
}

/** One kernel of the cache: its release, size, which names point at it, and whether it is the default. */
export interface KernelEntry {
  release: string
  dir: string
  bytes: number
  names: string[]
  isDefault: boolean
  /** `linux-image-… VERSION SUITE`, for kernels fetched by this version of vmctl. */
  package: string | undefined
}

/** The kernels in the cache, complete ones only. */
export function listCachedKernels(cacheDir: string): KernelEntry[] {
  const kernels = join(cacheDir, 'kernels')
  if (!existsSync(kernels)) return []
  const pointers = new Map<string, string[]>()
  const names = namesDir(cacheDir)
  for (const file of existsSync(names) ? readdirSync(names) : []) {
    if (file.startsWith('.')) continue
    try {
      const release = readlinkSync(join(names, file)).replace(/^\.\.\//, '')
      pointers.set(release, [...(pointers.get(release) ?? []), decodeURIComponent(file)])
    } catch {}
  }
  let defaultRelease: string | undefined
  try {
    defaultRelease = readlinkSync(join(kernels, 'default'))
  } catch {}
  return readdirSync(kernels)
    .filter(
      (entry) =>
        !lstatSync(join(kernels, entry)).isSymbolicLink() && existsSync(join(kernels, entry, '.complete')),
    )
    .map((release) => ({
      release,
      dir: join(kernels, release),
      bytes: treeBytes(join(kernels, release)),
      names: pointers.get(release) ?? [],
      isDefault: release === defaultRelease,
      package: readFirstLine(join(kernels, release, 'package')),
    }))
}

/**
 * Removes cached kernels: those given by release or name, or (with none given) every kernel that
 * is neither the default nor pointed at by a name, and the module trees made for custom kernels
 * that no running VM uses. Names pointing at a removed kernel go too.
 * Under the kernels lock, so a fetch in progress is never cut short. VMs already running keep
 * their kernel (QEMU has it open); a template made from it is rebuilt if the kernel comes back.
 */
export async function pruneKernels(
  cacheDir: string,
  which: string[] = [],
  say: Say = stderrSay,
): Promise<KernelEntry[]> {
  return withKernelsLock(
    cacheDir,
    async () => {
      const all = listCachedKernels(cacheDir)
      const wanted = which.map((w) => (w.startsWith('debian:') ? parseKernelName(w).text : w))
      const doomed = which.length
        ? all.filter((k) => wanted.includes(k.release) || k.names.some((n) => wanted.includes(n)))
        : all.filter((k) => !k.isDefault && k.names.length === 0)
      for (const k of doomed) {
        rmSync(k.dir, { recursive: true, force: true })
        for (const n of k.names)
          rmSync(join(namesDir(cacheDir), kernelNameFile(parseKernelName(n))), { force: true })
        if (k.isDefault) rmSync(join(cacheDir, 'kernels', 'default'), { force: true })
      }
      // The module trees made for kernels given by path (custom-modules.ts): remade in seconds by
      // the next VM that needs one, so a prune with nothing named removes them, except those a
      // running VM reads its modules from (custom-trees-in-use.ts).
      if (which.length === 0) pruneCustomTrees(cacheDir, say)
      // Leftovers of killed fetches: safe to remove under the lock.
      for (const entry of readdirSync(join(cacheDir, 'kernels')))
        if (/^\.(stage|default)-/.test(entry))
          rmSync(join(cacheDir, 'kernels', entry), { recursive: true, force: true })
      return doomed
    },
    say,
  )
}

function pruneCustomTrees(cacheDir: string, say: Say): void {
  const base = join(cacheDir, 'kernels', 'custom')
  if (!existsSync(base)) return
  const inUse = customTreesInUse(cacheDir)
  for (const key of readdirSync(base)) {
    if (inUse.has(key)) {
      say(`kept the module tree ${join(base, key)}: a running VM loads its modules from it`)
      continue
    }
    rmSync(join(base, key), { recursive: true, force: true })
  }
}

function treeBytes(dir: string): number {
  let total = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue
    try {
      total += statSync(join(entry.parentPath ?? entry.path, entry.name)).size
    } catch {}
  }
  return total
}
