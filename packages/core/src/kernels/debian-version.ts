/**
 * Debian's version order (dpkg's `verrevcmp`): `[epoch:]upstream[-revision]`, compared epoch first
 * (a number), then upstream, then revision. Within each, runs of non-digits and digits alternate:
 * non-digits compare character by character with `~` before everything (even the end, so
 * `1.0~rc1` < `1.0`), then the end, then letters, then other characters; digit runs compare as numbers.
 * An index may list one package several times (bookworm-security carries each fixed linux-source),
 * and apt installs the highest.
 */
export function compareDebianVersions(a: string, b: string): number {
  const left = splitVersion(a)
  const right = splitVersion(b)
  return (
    Math.sign(left.epoch - right.epoch) ||
    compareParts(left.upstream, right.upstream) ||
    compareParts(left.revision, right.revision)
  )
}

/** The highest of some versions by Debian's order; undefined when there are none. */
export function highestVersion<T>(items: T[], version: (item: T) => string): T | undefined {
  let best: T | undefined
  for (const item of items)
    if (best === undefined || compareDebianVersions(version(item), version(best)) > 0) best = item
  return best
}

function splitVersion(version: string): { epoch: number; upstream: string; revision: string } {
  const colon = version.indexOf(':')
  const epoch = colon > 0 ? Number(version.slice(0, colon)) || 0 : 0
  const rest = colon > 0 ? version.slice(colon + 1) : version
  const dash = rest.lastIndexOf('-')
  return dash > 0
    ? { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) }
    : { epoch, upstream: rest, revision: '' }
}

/** dpkg's weight of one non-digit character; 0 is the end of the run. */
function weight(char: string | undefined): number {
  if (char === undefined) return 0
  if (char === '~') return -1
  if (/[A-Za-z]/.test(char)) return char.charCodeAt(0)
  return char.charCodeAt(0) + 256
}

const isDigit = (char: string | undefined) => char !== undefined && char >= '0' && char <= '9'

function compareParts(a: string, b: string): number {
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const left = isDigit(a[i]) ? 0 : weight(a[i])
      const right = isDigit(b[j]) ? 0 : weight(b[j])
      if (left !== right) return Math.sign(left - right)
      if (i < a.length && !isDigit(a[i])) i++
      if (j < b.length && !isDigit(b[j])) j++
    }
    let left = ''
    let right = ''
    while (isDigit(a[i])) left += a[i++]
    while (isDigit(b[j])) right += b[j++]
    const difference = compareDigits(left, right)
    if (difference !== 0) return difference
  }
  return 0
}

/** Two digit runs as numbers of any length (leading zeros ignored; an empty run is 0). */
function compareDigits(a: string, b: string): number {
  const left = a.replace(/^0+/, '')
  const right = b.replace(/^0+/, '')
  if (left.length !== right.length) return Math.sign(left.length - right.length)
  return left < right ? -1 : left > right ? 1 : 0
}
