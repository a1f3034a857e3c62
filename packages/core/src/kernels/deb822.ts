/**
 * Debian's control-file format (deb822): stanzas of `Field: value` lines separated by blank lines,
 * a line starting with a space continuing the field before it. Release files and Packages indexes
 * are written in it.
 */
import { highestVersion } from './debian-version.js'

export type Stanza = Map<string, string>

export function parseStanza(text: string): Stanza {
  const fields: Stanza = new Map()
  let last: string | undefined
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    if ((line[0] === ' ' || line[0] === '\t') && last) {
      fields.set(last, `${fields.get(last)}\n${line.trim()}`)
      continue
    }
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    last = line.slice(0, colon)
    fields.set(last, line.slice(colon + 1).trim())
  }
  return fields
}

/**
 * The stanza of one package in a Packages index (~50 MB of text for bookworm's main): found by
 * searching for its `Package:` lines rather than parsing every stanza. An index may list a package
 * more than once (bookworm-security keeps each fixed linux-source): the highest version wins, as
 * with apt.
 */
export function findPackage(index: string, name: string): Stanza | undefined {
  const needle = `Package: ${name}\n`
  const starts = index.startsWith(needle) ? [0] : []
  for (let at = index.indexOf(`\n${needle}`); at >= 0; at = index.indexOf(`\n${needle}`, at + 1))
    starts.push(at + 1)
  const found = starts.map((start) => {
    const end = index.indexOf('\n\n', start)
    return parseStanza(index.slice(start, end < 0 ? undefined : end))
  })
  return highestVersion(found, (stanza) => stanza.get('Version') ?? '')
}

/** `SHA256` lines of a Release file: path → { sha256, size }. */
export function releaseChecksums(release: Stanza): Map<string, { sha256: string; size: number }> {
  const sums = new Map<string, { sha256: string; size: number }>()
  for (const line of (release.get('SHA256') ?? '').split('\n')) {
    const [sha256, size, path] = line.trim().split(/\s+/)
    if (sha256 && size && path) sums.set(path, { sha256, size: Number(size) })
  }
  return sums
}

/** Package names of a Depends field, first alternative of each (`a (>= 1) | b, c` → a, c). */
export function dependsNames(depends: string | undefined): string[] {
  if (!depends) return []
  return depends
    .split(',')
    .map(
      (part) =>
        part
          .split('|')[0]!
          .trim()
          .split(/[\s(:]/)[0]!,
    )
    .filter(Boolean)
}
