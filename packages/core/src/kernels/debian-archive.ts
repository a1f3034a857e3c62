import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import { gunzipSync } from 'node:zlib'
import { KernelFetchError } from '../errors.js'
import { SETUP_COMMAND } from '../paths.js'
import { cacheWriteError } from '../util/disk-full.js'
import { fetchError, httpGet } from './archive-http.js'
import { findPackage, parseStanza, releaseChecksums, type Stanza } from './deb822.js'
import { highestVersion } from './debian-version.js'
import { DownloadProgress } from './download-progress.js'
import { verifiedRelease } from './release-signature.js'
import { unxz } from './xz-stream.js'

export const DEFAULT_DEBIAN_MIRROR = 'https://deb.debian.org/debian'
export const DEFAULT_SECURITY_MIRROR = 'https://deb.debian.org/debian-security'
/** Debian 12: the release vmctl's boot recipe is measured on (its modules are plain .ko files). */
export const DEBIAN_SUITE = 'bookworm'
/**
 * Packages.gz where the Release file lists it (bookworm's main does: 12 MB, unpacked by zlib in
 * well under a second), else Packages.xz (the security suite has only that; 0.4 MB). xz in
 * WebAssembly takes ~15 s over main's 50 MB index.
 */
const INDEXES = ['main/binary-amd64/Packages.gz', 'main/binary-amd64/Packages.xz']

/** One suite of one archive: where packages are looked up, in order. */
export interface ArchiveSource {
  mirror: string
  suite: string
  /** The environment its proxy settings come from. */
  env: NodeJS.ProcessEnv
}

/**
 * bookworm-security first, then bookworm: a kernel with a security fix reaches the security suite
 * weeks before a point release moves it into bookworm, and it is what apt on a Debian 12 host
 * installs. VMCTL_DEBIAN_MIRROR replaces the
 * main archive; a mirror set that way is used alone unless VMCTL_DEBIAN_SECURITY_MIRROR names its
 * security counterpart (a local mirror seldom carries both).
 */
export function archiveSources(
  env: NodeJS.ProcessEnv = process.env,
  release = DEBIAN_SUITE,
): ArchiveSource[] {
  const security =
    trimSlash(env.VMCTL_DEBIAN_SECURITY_MIRROR) ||
    (env.VMCTL_DEBIAN_MIRROR ? undefined : DEFAULT_SECURITY_MIRROR)
  return [
    ...(security ? [{ mirror: security, suite: `${release}-security`, env }] : []),
    { mirror: mainMirror(env), suite: release, env },
  ]
}

/** The main archive: VMCTL_DEBIAN_MIRROR, else deb.debian.org (backports live there too). */
export function mainMirror(env: NodeJS.ProcessEnv = process.env): string {
  return trimSlash(env.VMCTL_DEBIAN_MIRROR) || DEFAULT_DEBIAN_MIRROR
}

/** A package found in an index: its stanza and the archive its Filename is relative to. */
export interface FoundPackage {
  name: string
  stanza: Stanza
  source: ArchiveSource
}

const indexes = new Map<string, Promise<string>>()

/**
 * The highest version of a package over all sources (the earlier source wins a tie), or undefined
 * when no source has it: after a point release, bookworm may carry a newer kernel than
 * bookworm-security still lists.
 */
export async function findInArchive(
  sources: ArchiveSource[],
  name: string,
): Promise<FoundPackage | undefined> {
  const found: FoundPackage[] = []
  for (const source of sources) {
    const stanza = findPackage(await packagesIndex(source), name)
    if (stanza) found.push({ name, stanza, source })
  }
  return highestVersion(found, (entry) => entry.stanza.get('Version') ?? '')
}

/**
 * A suite's Packages index for amd64 main, checked against the SHA256 its InRelease file gives,
 * whose OpenPGP signature is checked first (release-signature.ts). Fetched once per process.
 */
export function packagesIndex(source: ArchiveSource): Promise<string> {
  const key = `${source.mirror} ${source.suite} ${source.env.HTTPS_PROXY ?? source.env.https_proxy ?? ''}`
  let index = indexes.get(key)
  if (!index) {
    index = loadIndex(source)
    index.catch(() => indexes.delete(key))
    indexes.set(key, index)
  }
  return index
}

async function loadIndex(source: ArchiveSource): Promise<string> {
  const base = `${source.mirror}/dists/${source.suite}`
  const url = `${base}/InRelease`
  const signed = (await getBytes(url, source.env)).toString('utf8')
  const release = parseStanza(await verifiedRelease(url, signed, source.env))
  const sums = releaseChecksums(release)
  const index = INDEXES.find((path) => sums.has(path))
  if (!index)
    throw new KernelFetchError(
      url,
      `the Release file lists no SHA256 for ${INDEXES.join(' or ')}`,
      SETUP_COMMAND,
    )
  const compressed = await getBytes(`${base}/${index}`, source.env)
  verify(`${base}/${index}`, compressed.length, sha256(compressed), sums.get(index)!)
  return (index.endsWith('.gz') ? gunzipSync(compressed) : await unxz(compressed)).toString('utf8')
}

/**
 * Downloads a package's .deb to `path`, hashing it on the way; its size and SHA256 must be the
 * ones its stanza gives. `label` names it on the progress line.
 */
export async function downloadPackage(found: FoundPackage, path: string, label = found.name): Promise<void> {
  const filename = found.stanza.get('Filename')
  const size = Number(found.stanza.get('Size'))
  const expected = found.stanza.get('SHA256')
  const url = `${found.source.mirror}/${filename}`
  if (!filename || !expected || !Number.isFinite(size))
    throw new KernelFetchError(
      url,
      `the index entry of ${found.name} has no Filename, Size or SHA256`,
      SETUP_COMMAND,
    )
  const response = await httpGet(url, found.source.env)
  const hash = createHash('sha256')
  const progress = new DownloadProgress(label, size)
  let received = 0
  const body = Readable.fromWeb(response.body as unknown as WebReadableStream<Uint8Array>)
  body.on('data', (chunk: Buffer) => {
    hash.update(chunk)
    received += chunk.length
    progress.add(chunk.length)
  })
  try {
    await pipeline(body, createWriteStream(path))
  } catch (error) {
    const full = cacheWriteError(error, path)
    if (full !== error) throw full
    throw fetchError(url, error, found.source.env)
  }
  progress.finish()
  verify(url, received, hash.digest('hex'), { sha256: expected, size })
}

async function getBytes(url: string, env: NodeJS.ProcessEnv): Promise<Buffer> {
  const response = await httpGet(url, env)
  try {
    return Buffer.from(await response.arrayBuffer())
  } catch (error) {
    throw fetchError(url, error, env)
  }
}

function verify(url: string, size: number, sha: string, expected: { sha256: string; size: number }): void {
  if (size !== expected.size || sha !== expected.sha256)
    throw new KernelFetchError(
      url,
      `the download does not match the archive's checksum (got ${size} bytes, sha256 ${sha.slice(0, 16)}…; expected ${expected.size} bytes, ${expected.sha256.slice(0, 16)}…): a broken mirror or a proxy that rewrites downloads`,
      SETUP_COMMAND,
    )
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

function trimSlash(url: string | undefined): string | undefined {
  return url?.replace(/\/+$/, '') || undefined
}
