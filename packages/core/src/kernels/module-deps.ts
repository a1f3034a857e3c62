import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as zlib from 'node:zlib'
import { moduleName } from '../initramfs/module-order.js'
import { unxz } from './xz-stream.js'

/**
 * The `.modinfo` section of a kernel module (an ELF64 relocatable file): NUL-separated `key=value`
 * strings, among them `depends=` (the modules it needs symbols from, as modpost worked them out
 * when the kernel was built: the same answer depmod finds by matching symbols).
 */
export function readModinfo(elf: Buffer): Map<string, string[]> {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1)
    throw new Error('not a little-endian ELF64 file')
  const sectionHeaders = Number(elf.readBigUInt64LE(0x28))
  const entrySize = elf.readUInt16LE(0x3a)
  const count = elf.readUInt16LE(0x3c)
  const names = section(elf, sectionHeaders + elf.readUInt16LE(0x3e) * entrySize)
  const info = new Map<string, string[]>()
  for (let i = 0; i < count; i++) {
    const header = sectionHeaders + i * entrySize
    const nameAt = names.offset + elf.readUInt32LE(header)
    if (elf.toString('latin1', nameAt, elf.indexOf(0, nameAt)) !== '.modinfo') continue
    const { offset, size } = section(elf, header)
    for (const entry of elf.toString('utf8', offset, offset + size).split('\0')) {
      const eq = entry.indexOf('=')
      if (eq <= 0) continue
      const key = entry.slice(0, eq)
      info.set(key, [...(info.get(key) ?? []), entry.slice(eq + 1)])
    }
  }
  return info
}

function section(elf: Buffer, header: number): { offset: number; size: number } {
  return {
    offset: Number(elf.readBigUInt64LE(header + 0x18)),
    size: Number(elf.readBigUInt64LE(header + 0x20)),
  }
}

/** A module file's bytes, decompressed when it is a .ko.xz, .ko.gz or .ko.zst (trixie ships .ko.xz). */
export async function readModuleFile(path: string): Promise<Buffer> {
  const data = readFileSync(path)
  if (path.endsWith('.ko.xz')) return unxz(data)
  if (path.endsWith('.ko.gz')) return zlib.gunzipSync(data)
  if (path.endsWith('.ko.zst')) {
    // zstd is in node:zlib from Node 22.15 on; on Node 20 such a kernel cannot be indexed.
    const zstd = (zlib as unknown as { zstdDecompressSync?: (b: Buffer) => Buffer }).zstdDecompressSync
    if (!zstd) throw new Error(`${path}: zstd-compressed modules need Node 22.15 or newer`)
    return zstd(data)
  }
  return data
}

/** Module paths under a module tree (relative, e.g. `kernel/fs/9p/9p.ko`). */
export function listModules(modulesDir: string, under = 'kernel'): string[] {
  const found: string[] = []
  const walk = (relative: string) => {
    for (const entry of readdirSync(join(modulesDir, relative), { withFileTypes: true })) {
      const path = `${relative}/${entry.name}`
      if (entry.isDirectory()) walk(path)
      else if (/\.ko(\.(xz|gz|zst))?$/.test(entry.name)) found.push(path)
    }
  }
  if (existsSync(join(modulesDir, under))) walk(under)
  return found
}

/**
 * modules.dep in depmod's format: one line per module, `path: dep dep ...`, each module's whole
 * dependency closure, users before what they use (a loader goes from the end). Lines follow
 * modules.order (then the modules it does not list, by path), and deps are sorted as depmod sorts
 * them: by a topological order of all modules that takes modules without users first, the last
 * one first (kmod's depmod_calculate_dependencies). Against depmod's file for Debian's 6.1 kernel
 * (4023 modules) every line has the same modules; 39 list independent siblings in another order
 * (depmod meets direct dependencies in symbol-table order, modinfo names them in modpost's).
 */
export function computeModulesDep(
  modules: Array<{ path: string; depends: string[] }>,
  order: string[] = [],
): string {
  const position = new Map(order.map((path, i) => [path, i]))
  const sorted = [...modules].sort((a, b) => {
    const pa = position.get(a.path) ?? Number.MAX_SAFE_INTEGER
    const pb = position.get(b.path) ?? Number.MAX_SAFE_INTEGER
    return pa !== pb ? pa - pb : a.path < b.path ? -1 : a.path > b.path ? 1 : 0
  })
  const byName = new Map(sorted.map((m, i) => [moduleName(m.path), i]))
  const deps = sorted.map((m) =>
    m.depends.map((d) => byName.get(d.replace(/-/g, '_'))).filter((i): i is number => i !== undefined),
  )
  const users = new Array<number>(sorted.length).fill(0)
  for (const list of deps) for (const d of list) users[d]!++
  const roots = sorted.map((_, i) => i).filter((i) => users[i] === 0)
  const sortIndex = new Array<number>(sorted.length).fill(Number.MAX_SAFE_INTEGER)
  let next = 0
  while (roots.length > 0) {
    const src = roots.pop()!
    sortIndex[src] = next++
    for (const dst of deps[src]!) if (--users[dst]! === 0) roots.push(dst)
  }
  const lines = sorted.map((m, i) => {
    const closure = new Set<number>()
    const visit = (j: number) => {
      for (const d of deps[j]!) {
        if (closure.has(d)) continue
        closure.add(d)
        visit(d)
      }
    }
    visit(i)
    const list = [...closure].sort((a, b) => sortIndex[a]! - sortIndex[b]!).map((d) => sorted[d]!.path)
    return `${m.path}:${list.length ? ` ${list.join(' ')}` : ''}\n`
  })
  return lines.join('')
}

/** Reads every module's `depends=` and writes `modules.dep` into the tree. */
export async function writeModulesDep(modulesDir: string): Promise<number> {
  const orderFile = join(modulesDir, 'modules.order')
  const order = existsSync(orderFile) ? readFileSync(orderFile, 'utf8').split('\n').filter(Boolean) : []
  const modules: Array<{ path: string; depends: string[] }> = []
  for (const path of listModules(modulesDir)) {
    const depends = readModinfo(await readModuleFile(join(modulesDir, path))).get('depends')?.[0] ?? ''
    modules.push({ path, depends: depends.split(',').filter(Boolean) })
  }
  writeFileSync(join(modulesDir, 'modules.dep'), computeModulesDep(modules, order))
  return modules.length
}
