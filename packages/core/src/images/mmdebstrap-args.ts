/**
 * mmdebstrap's arguments for a vmctl image: minbase + the packages, without documentation, man
 * pages and translations, apt lists kept.
 *
 * Two things mmdebstrap would do by default cost most of a cold build and change nothing in the
 * image (docs/images.md has the figures):
 *
 * - Given the `path-exclude` options as `--dpkgopt`, mmdebstrap pipes every essential package
 *   through `mmtarfilter` (a Python program started once per package, through whatever `python3`
 *   is first on PATH: a pyenv shim adds its own start-up) while it extracts them. Here the same
 *   options are written by a setup hook to a dpkg.cfg.d file mmdebstrap does not look at, so it
 *   extracts with plain tar; an extract hook then removes exactly what the filter would have
 *   dropped, before anything runs; a customize hook moves the options to the file mmdebstrap would
 *   have written, `/etc/dpkg/dpkg.cfg.d/99mmdebstrap`, with the same lines, so later
 *   `apt-get install`s in the image still leave the documentation out.
 * - dpkg fsyncs every file it unpacks. Nothing here needs that durability: the tree is read back
 *   by mkfs.ext4 from the page cache, and a build that dies is thrown away. `force-unsafe-io` is
 *   set for the build only, in its own file, removed by the customize hook; the image's dpkg keeps
 *   its defaults.
 */

/** dpkg's path filters: what a vmctl image leaves out (and keeps for later installs). */
export const DPKG_PATH_FILTERS = [
  'path-exclude=/usr/share/doc/*',
  'path-exclude=/usr/share/man/*',
  'path-exclude=/usr/share/info/*',
  'path-exclude=/usr/share/locale/*',
  'path-include=/usr/share/locale/locale.alias',
]

// dpkg reads only names of letters, digits, '-' and '_' in dpkg.cfg.d; mmdebstrap's extract step
// looks only at 99mmdebstrap.
const FILTERS_DURING_BUILD = '/etc/dpkg/dpkg.cfg.d/vmctl-build-path-filters'
const UNSAFE_IO_DURING_BUILD = '/etc/dpkg/dpkg.cfg.d/vmctl-build-unsafe-io'
const FILTERS_IN_IMAGE = '/etc/dpkg/dpkg.cfg.d/99mmdebstrap'

/** Writes the build's dpkg options into the new root ($1). */
export const SETUP_HOOK = [
  'set -e',
  'mkdir -p "$1/etc/dpkg/dpkg.cfg.d"',
  `printf '%s\\n' ${DPKG_PATH_FILTERS.map((line) => `'${line}'`).join(' ')} > "$1${FILTERS_DURING_BUILD}"`,
  `echo force-unsafe-io > "$1${UNSAFE_IO_DURING_BUILD}"`,
].join('; ')

/**
 * Runs after the essential packages are extracted with tar and before dpkg installs them: drops
 * what the path filters exclude (everything under doc, man, info and locale but locale.alias),
 * as mmtarfilter would have. The directories themselves stay, as they do with the filter.
 */
export const EXTRACT_HOOK = [
  'set -e',
  'cd "$1/usr/share"',
  'for dir in doc man info; do if [ -d "$dir" ]; then find "$dir" -mindepth 1 -delete; fi; done',
  'if [ -d locale ]; then find locale -mindepth 1 ! -path locale/locale.alias -delete; fi',
].join('; ')

/** Puts the path filters where mmdebstrap would have, and drops the build-only dpkg option. */
export const CUSTOMIZE_HOOK = [
  'set -e',
  `mv "$1${FILTERS_DURING_BUILD}" "$1${FILTERS_IN_IMAGE}"`,
  `rm "$1${UNSAFE_IO_DURING_BUILD}"`,
].join('; ')

export function mmdebstrapArgs(options: {
  distribution: string
  packages: string[]
  mirror: string
  target: string
  mode: 'root' | 'unshare'
}): string[] {
  return [
    '--variant=minbase',
    `--setup-hook=${SETUP_HOOK}`,
    `--extract-hook=${EXTRACT_HOOK}`,
    `--customize-hook=${CUSTOMIZE_HOOK}`,
    '--aptopt=Acquire::Languages "none"',
    '--skip=cleanup/apt/lists',
    ...(options.packages.length ? [`--include=${options.packages.join(',')}`] : []),
    `--mode=${options.mode}`,
    options.distribution,
    options.target,
    options.mirror,
  ]
}
