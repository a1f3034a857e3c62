import { createHash } from 'node:crypto'
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { dirname, join } from 'node:path'
import type { ResolvedKernel } from '../host/kernel-locator.js'
import { prepareModules } from './kernel-package.js'
import { withKernelsLock } from './kernel-store.js'
import { listModules } from './module-deps.js'

/**
 * A kernel given by path whose modules vmctl must find: in any layout a kernel build or a package
 * gives, with or without modules.dep. Where there is none, vmctl computes it into its cache (a
 * tree of links to the user's modules with its own modules.dep and depmod's indexes), never
 * writing into the user's tree.
 *
 * Layouts, for an image at DIR/IMAGE and release R:
 *   DIR/lib/modules/R                 modules installed next to it (INSTALL_MOD_PATH=DIR)
 *   DIR/../lib/modules/R, DIR/../usr/lib/modules/R   an unpacked package (boot/vmlinuz-R)
 *   $INSTALL_MOD_PATH/lib/modules/R   where `make modules_install` put them
 *   a build tree: arch/x86/boot/bzImage or vmlinux at the top, modules.order and the .ko files
 *   /lib/modules/R                    the host's own, for the host's kernel
 */
export async function withCustomModules(
  kernel: ResolvedKernel,
  cacheDir: string,
  env: NodeJS.ProcessEnv,
): Promise<ResolvedKernel> {
  if (kernel.modulesDir) return kernel
  const release = kernel.release ?? (kernel.format === 'elf' ? vmlinuxRelease(kernel.image) : undefined)
  if (!release) return kernel
  const found = findModuleTree(kernel.image, release, env)
  if (!found) return { ...kernel, release }
  if (found.kind === 'installed' && existsSync(join(found.dir, 'modules.dep')))
    return { ...kernel, release, modulesDir: found.dir }
  return { ...kernel, release, modulesDir: await shadowTree(found, release, cacheDir, env) }
}

/** The release in a vmlinux's banner ("Linux version 6.12.9 (user@host) ..."), read in chunks. */
export function vmlinuxRelease(path: string): string | undefined {
  const needle = Buffer.from('Linux version ')
  const fd = openSync(path, 'r')
  try {
    const chunk = Buffer.alloc(8 << 20)
    for (let position = 0; ; ) {
      const n = readSync(fd, chunk, 0, chunk.length, position)
      if (n <= needle.length) return undefined
      const at = chunk.subarray(0, n).indexOf(needle)
      // The banner's format string (%s) comes first in some builds; the real one has a digit.
      if (at >= 0 && at + 80 < n) {
        const text = chunk.toString('latin1', at + needle.length, at + needle.length + 80).split(' ')[0]!
        if (/^\d+\.\d+/.test(text)) return text
        position += at + needle.length
        continue
      }
      if (n < chunk.length) return undefined
      position += n - 80
    }
  } finally {
    closeSync(fd)
  }
}

interface ModuleTree {
  /** installed: a lib/modules/R tree; build: a kernel build tree with .ko files among its sources. */
  kind: 'installed' | 'build'
  dir: string
}

export function findModuleTree(
  image: string,
  release: string,
  env: NodeJS.ProcessEnv,
): ModuleTree | undefined {
  const here = dirname(image)
  const installed = [
    join(here, 'lib/modules', release),
    join(here, '..', 'lib/modules', release),
    join(here, '..', 'usr/lib/modules', release),
    ...(env.INSTALL_MOD_PATH ? [join(env.INSTALL_MOD_PATH, 'lib/modules', release)] : []),
  ]
  for (const dir of installed)
    if (existsSync(join(dir, 'modules.order')) || listModules(dir).length > 0)
      return { kind: 'installed', dir }
  for (const top of [here, join(here, '..', '..', '..')])
    if (existsSync(join(top, 'modules.order')) && existsSync(join(top, 'Makefile')))
      return { kind: 'build', dir: top }
  if (existsSync(join('/lib/modules', release, 'modules.dep')))
    return { kind: 'installed', dir: join('/lib/modules', release) }
  return undefined
}

/**
 * `$CACHE/kernels/custom/<key>/lib/modules/R`: a link per module to the user's file, modules.dep
 * computed from the modules' .modinfo, depmod's indexes when the host has depmod. Keyed by where
 * the modules are and each one's size and mtime, so a rebuilt module makes a new tree. In the
 * guest the links resolve through the host root share, as the modules themselves would.
 */
async function shadowTree(
  tree: ModuleTree,
  release: string,
  cacheDir: string,
  env: NodeJS.ProcessEnv,
): Promise<string> {
  const top = realpathSync(tree.dir)
  const modules = tree.kind === 'installed' ? installedModules(top) : builtModules(top)
  const hash = createHash('sha256').update(`${top}\0${release}\0`)
  for (const [relative, file] of modules) {
    const stat = statSync(file)
    hash.update(`${relative} ${stat.size} ${stat.mtimeMs}\0`)
  }
  const key = hash.digest('hex').slice(0, 16)
  const base = join(cacheDir, 'kernels', 'custom')
  const dir = join(base, key)
  const modulesDir = join(dir, 'lib/modules', release)
  if (existsSync(join(dir, '.complete'))) return modulesDir
  return withKernelsLock(cacheDir, async () => {
    if (existsSync(join(dir, '.complete'))) return modulesDir
    mkdirSync(base, { recursive: true })
    const stage = mkdtempSync(join(base, '.stage-'))
    try {
      const target = join(stage, 'lib/modules', release)
      mkdirSync(target, { recursive: true })
      for (const [relative, file] of modules) {
        mkdirSync(dirname(join(target, relative)), { recursive: true })
        symlinkSync(file, join(target, relative))
      }
      const extras = [
        'modules.order',
        'modules.builtin',
        ...(tree.kind === 'installed' ? ['modules.builtin.modinfo'] : []),
      ]
      for (const extra of extras) {
        const from = join(top, extra)
        if (!existsSync(from)) continue
        if (tree.kind === 'installed') copyFileSync(from, join(target, extra))
        else writeFileSync(join(target, extra), buildTreeList(readFileSync(from, 'utf8')))
      }
      writeFileSync(join(stage, 'source'), `${top}\n`)
      await prepareModules(stage, release, env)
      writeFileSync(join(stage, '.complete'), '')
      rmSync(dir, { recursive: true, force: true })
      renameSync(stage, dir)
      return modulesDir
    } catch (error) {
      rmSync(stage, { recursive: true, force: true })
      throw error
    }
  })
}

/** Relative path in the tree → the file, for an installed lib/modules/R tree. */
function installedModules(top: string): Array<[string, string]> {
  const found: Array<[string, string]> = []
  for (const under of readdirSync(top, { withFileTypes: true }))
    if (under.isDirectory() && under.name !== 'build' && under.name !== 'source')
      for (const relative of listModules(top, under.name)) found.push([relative, join(top, relative)])
  return found
}

/** A build tree's modules (modules.order names them, `.o` since 6.2) at their installed places. */
function builtModules(top: string): Array<[string, string]> {
  return readFileSync(join(top, 'modules.order'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.replace(/\.o$/, '.ko'))
    .filter((path) => existsSync(join(top, path)))
    .map((path) => [`kernel/${path}`, join(top, path)])
}

/** modules.order and modules.builtin of a build tree, with the kernel/ prefix an install gives. */
function buildTreeList(text: string): string {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => `kernel/${line.replace(/\.o$/, '.ko')}\n`)
    .join('')
}
