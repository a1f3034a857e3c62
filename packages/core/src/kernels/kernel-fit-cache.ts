import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ResolvedKernel } from '../host/kernel-locator.js'
import { checkKernelFits, FIT_RULES, type KernelNeeds, kernelFitInputs } from './kernel-fit.js'

/** Verdicts already given in this process (a test file's many VM.up() calls). */
const fitting = new Set<string>()

/**
 * checkKernelFits, remembered: parsing a kernel's config and module lists costs 25-40 ms of CPU,
 * on every VM.up() and every `vmctl run`, for an answer that changes only with the files. A kernel
 * that fits leaves an empty marker under the cache, named by a hash of what the verdict depends on:
 * the rules, the needs, and the identity (path, size, mtime, inode) of the kernel and of every file
 * the check may read, present or not. Only a fit is remembered: an unfit kernel is checked (and
 * its error given) every time, and any change to those files checks it again.
 */
export function checkKernelFitsCached(kernel: ResolvedKernel, needs: KernelNeeds, cacheDir: string): void {
  const key = fitKey(kernel, needs)
  if (fitting.has(key)) return
  const marker = join(cacheDir, 'kernel-fit', `${key}.fits`)
  if (!existsSync(marker)) {
    checkKernelFits(kernel, needs)
    try {
      mkdirSync(join(cacheDir, 'kernel-fit'), { recursive: true })
      writeFileSync(marker, '')
    } catch {} // a read-only cache: checked again next time
  }
  fitting.add(key)
}

function fitKey(kernel: ResolvedKernel, needs: KernelNeeds): string {
  const identity = (path: string) => {
    try {
      const stat = statSync(path)
      return [path, stat.size, stat.mtimeMs, stat.ino]
    } catch {
      return [path]
    }
  }
  const inputs = [kernel.image, ...kernelFitInputs(kernel)].map(identity)
  const what = JSON.stringify({ rules: FIT_RULES, needs, release: kernel.release, inputs })
  return createHash('sha256').update(what).digest('hex').slice(0, 32)
}
