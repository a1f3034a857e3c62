import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { isAbsolute, join, relative } from 'node:path'
import { VmctlError } from '../errors.js'
import { contentHash } from '../host/content-hash.js'
import { lockIn, waitForLock } from '../host/cross-process-lock.js'
import { loadExeca } from '../host/lazy-execa.js'
import type { VmOptions } from '../vm/vm-options.js'
import { type Progress, touch } from './image-builder.js'
import { type ImageInfo, inspectImage, qemuImgBinary } from './image-file.js'

export function layersDir(cacheDir: string): string {
  return join(cacheDir, 'layers')
}

/** A provisioning step failed: the step, its exit code and its output. No cache entry was made. */
export class ProvisionError extends VmctlError {
  readonly step: string
  readonly exitCode: number
  readonly output: string
  constructor(step: string, index: number, exitCode: number, output: string) {
    super(
      'PROVISION_FAILED',
      `provisioning step ${index + 1} failed with exit code ${exitCode}: ${step}\nIts output:\n${output.trimEnd() || '(none)'}\nNothing was cached; fix the step and boot again.`,
    )
    this.step = step
    this.exitCode = exitCode
    this.output = output
  }
}

/**
 * A layer's key: the base image's content (not its path or mtime, so a cache restored on another
 * host under another $HOME keeps its layers) and the steps.
 */
export function layerKey(base: ImageInfo, steps: string[], cacheDir: string): string {
  return createHash('sha256')
    .update(JSON.stringify(['vmctl-layer-v2', contentHash(base.path, cacheDir), steps]))
    .digest('hex')
    .slice(0, 20)
}

/** A path inside the cache as relative to it (what the cache's own records hold), else as it is. */
export function cacheRelative(path: string, cacheDir: string): string {
  const inside = relative(cacheDir, path)
  return inside.startsWith('..') || isAbsolute(inside) ? path : inside
}

/** Boots a VM whose overlay is `overlay` (not in the VM's directory, so it survives the VM). */
export type BootForProvisioning = (options: VmOptions, overlay: string) => Promise<ProvisioningVm>

export interface ProvisioningVm {
  spawnStep(step: string, onOutput: (chunk: string) => void): Promise<number>
  sync(): Promise<void>
  destroy(): Promise<void>
}

/**
 * The provisioned layer of `base` for `steps`, made on first use: a VM boots from a fresh overlay
 * of the base, runs the steps in order (each in `sh -c`, output shown as it comes), syncs and is
 * destroyed; the overlay, checked, becomes `$cache/layers/KEY.qcow2`, a qcow2 backed by the base.
 * Later VMs get their own overlay on top of it. A failing step throws ProvisionError and the
 * half-made overlay is deleted.
 */
export async function provisionLayer(
  base: ImageInfo,
  steps: string[],
  options: VmOptions,
  cacheDir: string,
  boot: BootForProvisioning,
  progress: Progress,
): Promise<ImageInfo> {
  const key = layerKey(base, steps, cacheDir)
  const dir = layersDir(cacheDir)
  const path = join(dir, `${key}.qcow2`)
  const cached = usable(path)
  if (cached) return cached
  mkdirSync(dir, { recursive: true })
  const release = await waitForLock(lockIn(dir, `vmctl-layer-${key}`), 500, () =>
    progress(`waiting for another process provisioning layer ${key}`),
  )
  const staging = join(dir, `${key}.${process.pid}.staging.qcow2`)
  try {
    const again = usable(path)
    if (again) return again
    const started = performance.now()
    progress(
      `provisioning layer ${key} (${steps.length} step${steps.length === 1 ? '' : 's'}; cached afterwards)`,
    )
    rmSync(staging, { force: true })
    const vm = await boot(
      {
        ...options,
        image: base.path,
        provision: undefined,
        mounts: undefined,
        ports: undefined,
        networks: undefined, // the layer is the same whatever networks its VMs are on
        name: undefined,
        persistent: false,
      },
      staging,
    )
    try {
      for (const [index, step] of steps.entries()) {
        progress(`  step ${index + 1}/${steps.length}: ${step}`)
        let output = ''
        const exitCode = await vm.spawnStep(step, (chunk) => {
          output += chunk
          for (const line of chunk.split('\n')) if (line.trim()) progress(`    | ${line}`)
        })
        if (exitCode !== 0)
          throw new ProvisionError(step, index, exitCode, output.split('\n').slice(-40).join('\n'))
      }
      // The guest's page cache and QEMU's write-back cache, down to the staging file.
      await vm.sync()
    } finally {
      await vm.destroy()
    }
    const execa = await loadExeca()
    await execa(qemuImgBinary(), ['check', '-q', staging])
    writeFileSync(
      join(dir, `${key}.json`),
      `${JSON.stringify({ key, kind: 'layer', base: cacheRelative(base.path, cacheDir), steps, builtAt: new Date().toISOString(), buildMs: Math.round(performance.now() - started) }, null, 2)}\n`,
    )
    renameSync(staging, path)
    progress(`provisioned layer ${key} in ${((performance.now() - started) / 1000).toFixed(0)} s`)
    return inspectImage(path)
  } catch (error) {
    rmSync(staging, { force: true })
    throw error
  } finally {
    release()
  }
}

/** A cached layer whose chain still opens; a broken one (its base moved or changed) is removed. */
function usable(path: string): ImageInfo | undefined {
  if (!existsSync(path)) return undefined
  try {
    const info = inspectImage(path)
    touch(path.replace(/\.qcow2$/, '.json'))
    return info
  } catch {
    rmSync(path, { force: true })
    return undefined
  }
}
