import { createHash, randomBytes } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { VmctlError } from '../errors.js'
import { allocatedBytes, denserThanSaved } from './sparse-ram.js'

/** What a template directory holds, and how it is checked before every restore. */
export interface TemplateMeta {
  version: 1
  key: string
  createdAt: string
  /** Guest RAM size: the RAM file must be exactly this long. */
  memoryBytes: number
  /** sha256 of the device state file (small: tens of KB), to catch truncation and corruption. */
  stateSha256: string
  /** A readable summary of the definition, for `vmctl template ls`. */
  summary: string
  /**
   * Bytes the (sparse) RAM file took on disk when it was saved: one that takes much more now was
   * copied without its holes (a CI cache) and is made sparse again (see sparse-ram.ts).
   */
  ramBytesOnDisk?: number
}

export interface TemplateFiles {
  dir: string
  /** Guest RAM: written through a shared mapping by the VM the template was made from; every
   * restored VM maps it privately (copy-on-write), so none can change it. */
  ram: string
  /** Device state from QEMU's migration stream (RAM excluded with x-ignore-shared). */
  state: string
  meta: string
}

export interface ListedTemplate {
  key: string
  dir: string
  bytes: number
  createdAt: string
  lastUsedAt: string
  summary: string
  valid: boolean
}

export function templatesDir(cacheDir: string): string {
  return join(cacheDir, 'templates')
}

export function templateFiles(dir: string): TemplateFiles {
  return { dir, ram: join(dir, 'ram'), state: join(dir, 'state'), meta: join(dir, 'meta.json') }
}

/**
 * The template for `key`, or why it cannot be used: missing (undefined), or a problem (truncated
 * RAM, corrupt or missing state, another definition) that the caller reports in one line before
 * rebuilding it.
 */
export function checkTemplate(
  cacheDir: string,
  key: string,
): { files: TemplateFiles } | { problem: string } | undefined {
  const files = templateFiles(join(templatesDir(cacheDir), key))
  if (!existsSync(files.dir)) return undefined
  let meta: TemplateMeta
  try {
    meta = JSON.parse(readFileSync(files.meta, 'utf8')) as TemplateMeta
  } catch {
    return { problem: 'its meta.json is missing or unreadable' }
  }
  if (meta.version !== 1 || meta.key !== key) return { problem: 'it was made for another definition' }
  const ramBytes = sizeOf(files.ram)
  if (ramBytes !== meta.memoryBytes) {
    return { problem: `its RAM file is ${ramBytes ?? 'missing'} bytes, not ${meta.memoryBytes}` }
  }
  let state: Buffer
  try {
    state = readFileSync(files.state)
  } catch {
    return { problem: 'its device state file is missing' }
  }
  if (sha256(state) !== meta.stateSha256) return { problem: 'its device state file is corrupt or truncated' }
  return { files }
}

/**
 * Whether the template's RAM file takes much more disk than when it was saved (copied without its
 * holes: a CI cache restored with plain tar), so that it should be made sparse again.
 */
export function ramDenserThanSaved(files: TemplateFiles): boolean {
  try {
    const meta = JSON.parse(readFileSync(files.meta, 'utf8')) as TemplateMeta
    if (meta.ramBytesOnDisk === undefined) return false
    return denserThanSaved(allocatedBytes(statSync(files.ram)), meta.ramBytesOnDisk)
  } catch {
    return false
  }
}

/** Seals a template built in `staging`: its meta.json, with the device state's checksum. */
export function sealTemplate(
  staging: string,
  meta: Omit<TemplateMeta, 'stateSha256' | 'ramBytesOnDisk'>,
): void {
  const files = templateFiles(staging)
  const full: TemplateMeta = {
    ...meta,
    stateSha256: sha256(readFileSync(files.state)),
    ramBytesOnDisk: allocatedBytes(statSync(files.ram)),
  }
  writeFileSync(files.meta, `${JSON.stringify(full, null, 2)}\n`)
}

/**
 * Makes a sealed template visible to every boot, in one rename. Only once a VM made from it became
 * ready: a template saved before the root is mounted says nothing yet about whether the root mounts.
 */
export function publishTemplate(cacheDir: string, staging: string, key: string): TemplateFiles {
  const final = join(templatesDir(cacheDir), key)
  rmSync(final, { recursive: true, force: true })
  renameSync(staging, final)
  return templateFiles(final)
}

/** The templates' disk budget when VMCTL_TEMPLATE_CACHE_MB does not set one: ~25 default VMs. */
export const DEFAULT_TEMPLATE_CACHE_MB = 5 * 1024
/** A template used or made this recently may be in a restore right now: never evicted. */
const EVICTION_GRACE_MS = 10 * 60_000

/**
 * The templates' disk budget in MiB from VMCTL_TEMPLATE_CACHE_MB (0: no cap), or an error that
 * names the variable.
 */
export function templateCacheMiB(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.VMCTL_TEMPLATE_CACHE_MB
  if (raw === undefined || raw === '') return DEFAULT_TEMPLATE_CACHE_MB
  const mib = Number(raw)
  if (!Number.isFinite(mib) || mib < 0)
    throw new VmctlError(
      'INVALID_ENV',
      `VMCTL_TEMPLATE_CACHE_MB must be a number of MiB (0 for no cap), not ${JSON.stringify(raw)}`,
    )
  return mib
}

/**
 * Keeps the template cache within `maxMiB` (0: no cap) by removing the least recently used
 * templates: never `keep` (the one just made), never one used or made in the last ten minutes (a
 * VM may be restoring from it), never one still being made. Returns the removed ones.
 */
export function evictTemplates(
  cacheDir: string,
  maxMiB: number,
  keep: string,
  now = Date.now(),
): ListedTemplate[] {
  if (maxMiB === 0) return []
  const maxBytes = maxMiB * 1024 * 1024
  const all = listTemplates(cacheDir)
  let total = all.reduce((sum, t) => sum + t.bytes, 0)
  const removed: ListedTemplate[] = []
  const lastUse = (t: ListedTemplate) => Date.parse(t.lastUsedAt) || 0
  const candidates = all
    .filter((t) => t.key !== keep && !t.key.endsWith('.staging') && now - lastUse(t) > EVICTION_GRACE_MS)
    .sort((a, b) => lastUse(a) - lastUse(b))
  for (const template of candidates) {
    if (total <= maxBytes) break
    removeTemplate(cacheDir, template.key)
    total -= template.bytes
    removed.push(template)
  }
  return removed
}

export function removeTemplate(cacheDir: string, key: string): void {
  const dir = join(templatesDir(cacheDir), key)
  // Out of the way first, in one rename: the key is free for a rebuild at once, and a process
  // that writes into the directory meanwhile (a clone marking it used) writes into what goes. A
  // recursive rm alone failed with ENOTEMPTY when a file appeared in it during the removal, and
  // the VM that wanted to rebuild the template failed its boot. What a failed rm leaves is a
  // stale build, removed later (stale-builds.ts).
  const doomed = `${dir}.${process.pid}.staging.removed${randomBytes(3).toString('hex')}`
  try {
    renameSync(dir, doomed)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  try {
    rmSync(doomed, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 })
  } catch {}
}

/** Marks a template used now (prune's --unused-for reads it). */
export function touchTemplate(files: TemplateFiles): void {
  try {
    const now = new Date()
    writeFileSync(join(files.dir, 'last-used'), now.toISOString())
  } catch {}
}

export function listTemplates(cacheDir: string): ListedTemplate[] {
  let entries: string[]
  try {
    entries = readdirSync(templatesDir(cacheDir))
  } catch {
    return []
  }
  const listed: ListedTemplate[] = []
  for (const entry of entries) {
    const dir = join(templatesDir(cacheDir), entry)
    const files = templateFiles(dir)
    let meta: Partial<TemplateMeta> = {}
    try {
      meta = JSON.parse(readFileSync(files.meta, 'utf8'))
    } catch {}
    const check = checkTemplate(cacheDir, entry)
    let lastUsedAt = meta.createdAt ?? ''
    try {
      lastUsedAt = readFileSync(join(dir, 'last-used'), 'utf8').trim()
    } catch {}
    listed.push({
      key: entry,
      dir,
      bytes: diskUsage(dir),
      createdAt: meta.createdAt ?? '',
      lastUsedAt,
      summary: meta.summary ?? '(incomplete)',
      valid: check !== undefined && 'files' in check,
    })
  }
  return listed.sort((a, b) => a.createdAt.localeCompare(b.createdAt))
}

/** Bytes a directory takes on disk (allocated blocks: the RAM file is sparse). */
function diskUsage(dir: string): number {
  let total = 0
  try {
    for (const entry of readdirSync(dir)) {
      try {
        total += statSync(join(dir, entry)).blocks * 512
      } catch {}
    }
  } catch {}
  return total
}

function sizeOf(path: string): number | undefined {
  try {
    return statSync(path).size
  } catch {
    return undefined
  }
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}
