/**
 * Where each key of a TOML document is written, so a validation error can name its line.
 * smol-toml gives positions only for syntax errors; this scans the (already valid) text for table
 * headers (`[a.b]`, `[[a]]`, counting array entries) and `key =` assignments. Values inside inline
 * tables and multi-line arrays are reported at the line of the key that holds them.
 */
export type KeyPath = (string | number)[]

export function keyLines(source: string): Map<string, number> {
  const lines = new Map<string, number>()
  const arrayCounts = new Map<string, number>()
  let table: KeyPath = []
  let depth = 0 // open brackets of a multi-line value: its lines hold no keys of their own
  source.split(/\r?\n/).forEach((raw, index) => {
    const line = stripComment(raw).trim()
    const lineNo = index + 1
    if (depth > 0) {
      depth += bracketBalance(line)
      return
    }
    const arrayHeader = /^\[\[\s*(.+?)\s*\]\]$/.exec(line)
    const header = arrayHeader ? undefined : /^\[\s*(.+?)\s*\]$/.exec(line)
    if (arrayHeader) {
      const path = splitKey(arrayHeader[1]!)
      const id = path.join('\0')
      const n = arrayCounts.get(id) ?? 0
      arrayCounts.set(id, n + 1)
      table = [...path, n]
      setOnce(lines, table, lineNo)
      setOnce(lines, path, lineNo)
      return
    }
    if (header) {
      table = splitKey(header[1]!)
      setOnce(lines, table, lineNo)
      return
    }
    const assignment = /^((?:"[^"]*"|'[^']*'|[A-Za-z0-9_.\s-])+?)\s*=(.*)$/.exec(line)
    if (assignment) {
      const path = [...table, ...splitKey(assignment[1]!)]
      for (let i = table.length + 1; i <= path.length; i++) setOnce(lines, path.slice(0, i), lineNo)
      depth = Math.max(0, bracketBalance(assignment[2]!))
    }
  })
  return lines
}

/** The line of `path`, or of its nearest written ancestor. */
export function lineOf(lines: Map<string, number>, path: KeyPath): number | undefined {
  for (let n = path.length; n > 0; n--) {
    const line = lines.get(pathId(path.slice(0, n)))
    if (line !== undefined) return line
  }
  return undefined
}

/** `vm.db.mounts[0].host`: how a field is named in messages. */
export function formatPath(path: KeyPath): string {
  return path
    .map((part, i) =>
      typeof part === 'number'
        ? `[${part}]`
        : `${i > 0 ? '.' : ''}${/^[A-Za-z0-9_-]+$/.test(part) ? part : JSON.stringify(part)}`,
    )
    .join('')
}

function pathId(path: KeyPath): string {
  return path.join('\0')
}

function setOnce(lines: Map<string, number>, path: KeyPath, line: number): void {
  const id = pathId(path)
  if (!lines.has(id)) lines.set(id, line)
}

function splitKey(key: string): string[] {
  const parts: string[] = []
  const re = /\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*(?:\.|$)/y
  while (re.lastIndex < key.length) {
    const match = re.exec(key)
    if (!match) break
    parts.push(match[1] ?? match[2] ?? match[3] ?? '')
  }
  return parts
}

function stripComment(line: string): string {
  let quote: string | undefined
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (quote) {
      if (c === '\\' && quote === '"') i++
      else if (c === quote) quote = undefined
    } else if (c === '"' || c === "'") quote = c
    else if (c === '#') return line.slice(0, i)
  }
  return line
}

function bracketBalance(text: string): number {
  let balance = 0
  let quote: string | undefined
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (quote) {
      if (c === '\\' && quote === '"') i++
      else if (c === quote) quote = undefined
    } else if (c === '"' || c === "'") quote = c
    else if (c === '[' || c === '{') balance++
    else if (c === ']' || c === '}') balance--
  }
  return balance
}
