/**
 * The known name a misspelt one most likely meant ("memroy" -> "memoryMiB"), or undefined when
 * none is close: for "did you mean" in option, config and flag errors. Case, "-" and "_" are
 * ignored; a name may also be a misspelt prefix of the known one (units such as MiB left off).
 */
export function closestName(name: string, known: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[_-]/g, '')
  const wanted = norm(name)
  if (!wanted) return undefined
  // One letter says too little: any name starting with it, or one edit from it, is a guess (vmctl
  // q is not setup; -x is not --config). Only the same name but for case or separators.
  if (wanted.length === 1) return known.find((k) => norm(k) === wanted)
  // The same name but for case or separators, else the nearest in length of those it extends or
  // that extend it (kernel_args is kernelArgs, not kernel).
  const related = known
    .filter((k) => norm(k).startsWith(wanted) || wanted.startsWith(norm(k)))
    .sort((a, b) => Math.abs(norm(a).length - wanted.length) - Math.abs(norm(b).length - wanted.length))
  if (related[0]) return related[0]
  // Up to one edit per three letters (at least one), against the whole name or, from three letters
  // on, its prefix (two letters are one edit from the start of too many names).
  const limit = Math.max(1, Math.floor(wanted.length / 3))
  let best: { name: string; cost: number } | undefined
  for (const k of known) {
    const n = norm(k)
    const whole = distance(n, wanted)
    const cost = wanted.length >= 3 ? Math.min(whole, distance(n.slice(0, wanted.length), wanted)) : whole
    if (cost <= limit && (!best || cost < best.cost)) best = { name: k, cost }
  }
  return best?.name
}

/** Levenshtein distance, with a swap of two neighbouring letters counted as one edit. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  )
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(
        d[i - 1]![j]! + 1,
        d[i]![j - 1]! + 1,
        d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      )
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1)
    }
  return d[a.length]![b.length]!
}
