import { readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { BaseSequencer, type TestSpecification } from 'vitest/node'

/** A test file as the order sees it. */
export interface FileToOrder {
  /** Relative to the run's root, with forward slashes. */
  file: string
  sizeBytes: number
  /** From vitest's own cache of the last run on this machine, if any. */
  cachedMs?: number
}

/** The committed durations: `{ "path/to/a.test.ts": seconds }`, from one whole run. */
export const FILE_SECONDS = 'file-seconds.json'

/** A file that boots VMs, by the repository's naming: `*.vm.test.ts`, the examples, the e2e tests. */
export function bootsVms(file: string): boolean {
  return /\.vm\.test\.|^examples\/|^e2e\//.test(file)
}

/** The middle of the committed durations of files that boot VMs: a new VM file's estimate. */
function medianVmSeconds(seconds: Record<string, number>): number {
  const vm = Object.entries(seconds)
    .filter(([file]) => bootsVms(file))
    .map(([, s]) => s)
    .sort((a, b) => a - b)
  return vm.length === 0 ? 0 : vm[Math.floor(vm.length / 2)]!
}

/**
 * `files` slowest first: each by its committed seconds, else vitest's cached duration, else an
 * estimate (a VM file: the median VM file; any other: 0). Ties (unit tests) go largest first, as
 * in vitest's own order.
 */
export function slowestFirst<T extends FileToOrder>(files: T[], seconds: Record<string, number>): T[] {
  const unknownVmMs = medianVmSeconds(seconds) * 1000
  const expectedMs = (f: FileToOrder) =>
    seconds[f.file] !== undefined
      ? seconds[f.file]! * 1000
      : (f.cachedMs ?? (bootsVms(f.file) ? unknownVmMs : 0))
  return files
    .map((f) => ({ f, ms: expectedMs(f) }))
    .sort((a, b) => b.ms - a.ms || b.f.sizeBytes - a.f.sizeBytes)
    .map(({ f }) => f)
}

/** The committed durations in `root`; none when there is no such file. */
export function committedSeconds(root: string): Record<string, number> {
  try {
    return JSON.parse(readFileSync(join(root, FILE_SECONDS), 'utf8')) as Record<string, number>
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw error
  }
}

/**
 * The order in which a run starts its test files: the slowest first. With two workers the run's
 * wall time is its makespan, and a 4-minute file that starts last stretches the end while the
 * other worker idles. vitest orders by the durations it cached from the last run on the machine; a
 * fresh clone (CI) has none, and vitest then starts the largest files first, which is not the same.
 * So the durations of one whole run are committed (scripts/record-file-seconds.mjs writes them)
 * and come first; sharding stays vitest's.
 */
export default class SlowestFirstSequencer extends BaseSequencer {
  override async sort(specs: TestSpecification[]): Promise<TestSpecification[]> {
    const root = this.ctx.config.root
    const files = specs.map((spec) => {
      const file = relative(root, spec.moduleId).split('\\').join('/')
      const key = `${spec.project.name}:${file}`
      return {
        spec,
        file,
        sizeBytes: this.ctx.cache.getFileStats(key)?.size ?? 0,
        cachedMs: this.ctx.cache.getFileTestResults(key)?.duration,
      }
    })
    return slowestFirst(files, committedSeconds(root)).map(({ spec }) => spec)
  }
}
