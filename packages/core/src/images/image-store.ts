import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { imagesDir, readMeta } from './image-builder.js'
import { layersDir } from './provision.js'

export interface CachedImage {
  kind: 'image' | 'layer'
  key: string
  /** The qcow2 file. */
  path: string
  /** Bytes on disk (allocated), of everything the entry holds. */
  bytes: number
  createdAt: string
  lastUsedAt: string
  /** What went into it: the distribution and packages, or the provisioning steps. */
  summary: string
  /** A layer's base image file. */
  base?: string | undefined
  /** Left over by a build that died (no meta or no qcow2): prune removes it. */
  broken: boolean
}

/** Built images and provisioning layers in the cache, for `vmctl image ls|prune`. */
export function listCachedImages(cacheDir: string): CachedImage[] {
  const out: CachedImage[] = []
  const images = imagesDir(cacheDir)
  for (const name of safeReaddir(images)) {
    const dir = join(images, name)
    const meta = readMeta(dir)
    const path = join(dir, 'image.qcow2')
    const broken = !meta || !existsSync(path) || name.includes('.staging')
    out.push({
      kind: 'image',
      key: name,
      path,
      bytes: allocated(dir),
      createdAt: String(meta?.builtAt ?? ''),
      lastUsedAt: mtime(join(dir, 'meta.json')),
      summary: meta
        ? `Debian ${meta.distribution}${(meta.packages as string[]).length ? ` + ${(meta.packages as string[]).join(' ')}` : ''}`
        : 'unfinished build',
      broken,
    })
  }
  const layers = layersDir(cacheDir)
  for (const name of safeReaddir(layers)) {
    if (!name.endsWith('.qcow2') && !name.endsWith('.json')) continue
    const key = name.replace(/\.(qcow2|json)$/, '')
    if (name.endsWith('.json') && existsSync(join(layers, `${key}.qcow2`))) continue
    const path = join(layers, `${key}.qcow2`)
    const metaFile = join(layers, `${key}.json`)
    const meta = readJson(metaFile)
    const steps = (meta?.steps as string[] | undefined) ?? []
    // Recorded relative to the cache when the base is in it (the cache may have moved since).
    const base = meta?.base === undefined ? undefined : resolve(cacheDir, String(meta.base))
    out.push({
      kind: 'layer',
      key,
      path,
      bytes: allocated(path) + allocated(metaFile),
      createdAt: String(meta?.builtAt ?? ''),
      lastUsedAt: mtime(metaFile),
      summary: meta ? `on ${base}: ${steps.join(' && ')}` : 'unfinished provisioning',
      base,
      broken: !meta || !existsSync(path) || key.includes('.staging') || !base || !existsSync(base),
    })
  }
  return out
}

/** Removes an entry, and with an image the layers made on it. Returns the entries removed. */
export function removeCachedImage(cacheDir: string, entry: CachedImage): CachedImage[] {
  const removed = [entry]
  if (entry.kind === 'image') {
    rmSync(join(imagesDir(cacheDir), entry.key), { recursive: true, force: true })
    for (const layer of listCachedImages(cacheDir))
      if (layer.kind === 'layer' && layer.base === entry.path)
        removed.push(...removeCachedImage(cacheDir, layer))
  } else {
    rmSync(entry.path, { force: true })
    rmSync(join(layersDir(cacheDir), `${entry.key}.json`), { force: true })
    for (const layer of listCachedImages(cacheDir))
      if (layer.kind === 'layer' && layer.base === entry.path)
        removed.push(...removeCachedImage(cacheDir, layer))
  }
  return removed
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir)
  } catch {
    return []
  }
}

function allocated(path: string): number {
  try {
    const stat = statSync(path)
    if (!stat.isDirectory()) return stat.blocks * 512
    return readdirSync(path).reduce((n, name) => n + allocated(join(path, name)), 0)
  } catch {
    return 0
  }
}

function mtime(path: string): string {
  try {
    return statSync(path).mtime.toISOString()
  } catch {
    return ''
  }
}

function readJson(path: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8'))
  } catch {
    return undefined
  }
}
