import { dirname, join } from 'node:path'
import { contentHash } from '../host/content-hash.js'
import { diskFileWriteError, runtimeWriteError } from '../util/disk-full.js'
import type { VmOptions } from '../vm/vm-options.js'
import { buildImage, type Progress } from './image-builder.js'
import { createOverlay, type ImageInfo, inspectImage } from './image-file.js'
import { type BootForProvisioning, provisionLayer } from './provision.js'

/** The image a VM's overlay is backed by: the given or built image, or its provisioned layer. */
export async function resolveImage(
  options: VmOptions,
  cacheDir: string,
  boot: BootForProvisioning,
  progress: Progress,
): Promise<ImageInfo> {
  const image = options.image!
  const base =
    typeof image === 'string'
      ? inspectImage(image)
      : inspectImage((await buildImage(image, cacheDir, progress)).path)
  const steps = options.provision ?? []
  if (steps.length === 0) return base
  return provisionLayer(base, steps, options, cacheDir, boot, progress)
}

/**
 * The VM's own disk: a qcow2 overlay on `top`, by default in the VM's directory, so it goes when
 * the VM's directory does. `identity` names what it is backed by (for the template key).
 */
export async function createVmDisk(
  top: ImageInfo,
  vmDirectory: string,
  cacheDir: string,
  overlay = join(vmDirectory, 'disk.qcow2'),
): Promise<{ overlay: string; identity: string }> {
  try {
    await createOverlay(top, overlay, cacheDir)
  } catch (error) {
    throw dirname(overlay) === vmDirectory
      ? runtimeWriteError(error, vmDirectory, overlay)
      : diskFileWriteError(error, overlay)
  }
  return { overlay, identity: imageIdentity(top.path, cacheDir) }
}

/**
 * What a VM template of an image-mode VM is keyed by (its summary says `image IDENTITY`): the
 * content of the image it is backed by, so the key holds on another host.
 */
export function imageIdentity(path: string, cacheDir: string): string {
  return contentHash(path, cacheDir).slice(0, 16)
}
