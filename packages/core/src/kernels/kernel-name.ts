import { InvalidOptionsError } from '../errors.js'

/**
 * A kernel named by where it comes from rather than by a path: `debian:SUITE[-backports][/FLAVOUR]
 * [@VERSION]`, e.g. `debian:trixie`, `debian:bookworm/rt`, `debian:bookworm-backports`,
 * `debian:bookworm@6.1.0-57` (an ABI: the package linux-image-6.1.0-57-amd64) or
 * `debian:bookworm@6.1.158-1` (a package version, which must be the one the archive has now).
 */
export interface KernelName {
  /** The name as written, normalised (`debian:bookworm/amd64` → `debian:bookworm`). */
  text: string
  /** bullseye, bookworm, trixie. */
  release: DebianRelease
  backports: boolean
  /** '' for the generic kernel, else `rt` or `cloud`. */
  flavour: '' | 'rt' | 'cloud'
  /** An ABI (`6.1.0-57`, `6.12.57+deb13`) or a Debian package version (`6.1.158-1`). */
  version: string | undefined
}

/** The suites reachable from Debian's archive that carry an amd64 kernel vmctl boots. */
export const DEBIAN_RELEASES = ['bullseye', 'bookworm', 'trixie'] as const
export type DebianRelease = (typeof DEBIAN_RELEASES)[number]

const FLAVOURS = ['', 'rt', 'cloud'] as const

const SYNTAX =
  'debian:SUITE[-backports][/FLAVOUR][@VERSION], e.g. debian:trixie, debian:bookworm/rt, debian:bookworm-backports, debian:bookworm@6.1.0-57'

/** True for a string that names a kernel (`debian:...`), not a path. */
export function isKernelName(value: string | undefined): value is string {
  return typeof value === 'string' && /^debian:/i.test(value)
}

/** Parses a kernel name; a malformed one is an error that shows the syntax and the choices. */
export function parseKernelName(value: string): KernelName {
  const match = /^debian:([a-z]+)(-backports)?(?:\/([a-z0-9]+))?(?:@([A-Za-z0-9.+~:-]+))?$/.exec(value.trim())
  if (!match) throw new InvalidOptionsError(`kernel ${JSON.stringify(value)} is not a kernel name: ${SYNTAX}`)
  const [, suite, backports, rawFlavour, version] = match
  const release = DEBIAN_RELEASES.find((r) => r === suite)
  if (!release)
    throw new InvalidOptionsError(
      `kernel ${JSON.stringify(value)}: no Debian suite ${JSON.stringify(suite)} vmctl fetches kernels from; choose one of ${DEBIAN_RELEASES.join(', ')} (${SYNTAX})`,
    )
  const flavour = rawFlavour === 'amd64' || rawFlavour === 'generic' ? '' : (rawFlavour ?? '')
  if (!(FLAVOURS as readonly string[]).includes(flavour))
    throw new InvalidOptionsError(
      `kernel ${JSON.stringify(value)}: no flavour ${JSON.stringify(rawFlavour)}; Debian's amd64 kernels come as the generic one (no flavour), /rt and /cloud`,
    )
  const name: Omit<KernelName, 'text'> = {
    release,
    backports: Boolean(backports),
    flavour: flavour as KernelName['flavour'],
    version,
  }
  return { ...name, text: formatKernelName(name) }
}

export function formatKernelName(name: Omit<KernelName, 'text'>): string {
  return `debian:${name.release}${name.backports ? '-backports' : ''}${name.flavour ? `/${name.flavour}` : ''}${name.version ? `@${name.version}` : ''}`
}

/** The metapackage whose Depends names the suite's current kernel of this flavour. */
export function metapackageOf(name: KernelName): string {
  return `linux-image-${name.flavour ? `${name.flavour}-` : ''}amd64`
}

/** The versioned package of an ABI (`6.1.0-57` → linux-image-6.1.0-57-rt-amd64 for /rt). */
export function versionedPackageOf(name: KernelName, abi: string): string {
  return `linux-image-${abi}-${name.flavour ? `${name.flavour}-` : ''}amd64`
}

/**
 * The suites a name is looked up in, first match wins: the security suite and the point-release
 * updates before the release itself (a fixed kernel reaches them first, as apt would install it);
 * backports alone.
 */
export function suitesOf(name: KernelName): Array<{ suite: string; security: boolean }> {
  if (name.backports) return [{ suite: `${name.release}-backports`, security: false }]
  return [
    { suite: `${name.release}-security`, security: true },
    { suite: name.release, security: false },
  ]
}

/** A file name for the name's pointer in the cache (`debian:bookworm/rt` → `debian%3Abookworm%2Frt`). */
export function kernelNameFile(name: KernelName): string {
  return encodeURIComponent(name.text)
}
