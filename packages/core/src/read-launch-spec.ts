import { readdirSync, readFileSync } from 'node:fs'
import { isAbsolute, join, relative, resolve } from 'node:path'
import type { LaunchSpec } from './launch-spec.js'

/** The launch spec's file name in a VM's directory (supervisor/vm-directory.ts: `launchFile`). */
export const LAUNCH_FILE = 'launch.json'

/** The launch specs of the VMs in this runtime directory, whatever their state (unreadable ones left out). */
export function launchSpecsIn(vms: string): LaunchSpec[] {
  let names: string[]
  try {
    names = readdirSync(vms)
  } catch {
    return []
  }
  return names
    .map((name) => readLaunchSpec(join(vms, name, LAUNCH_FILE)))
    .filter((spec) => spec !== undefined)
}

/** A VM's launch.json (written by its creator), or undefined when it cannot be read. */
export function readLaunchSpec(launchFile: string): LaunchSpec | undefined {
  try {
    return JSON.parse(readFileSync(launchFile, 'utf8')) as LaunchSpec
  } catch {
    return undefined
  }
}

/**
 * Where a host path is seen in the guest of `spec`, or undefined when it is not: in kernel mode the
 * host root is the guest's (same paths); in image mode only `mounts` reach the host.
 */
export function guestPathIn(
  spec: Pick<LaunchSpec, 'hostRoot' | 'image' | 'mounts'>,
  hostPath: string,
): string | undefined {
  const path = resolve(hostPath)
  for (const mount of spec.mounts ?? []) {
    const inside = below(mount.host, path)
    if (inside !== undefined) return join(mount.guest, inside)
  }
  if (spec.image || !spec.hostRoot) return undefined
  const inside = below(spec.hostRoot, path)
  return inside === undefined ? undefined : join('/', inside)
}

/** `path` relative to `root` when it is `root` or below it. */
function below(root: string, path: string): string | undefined {
  const rel = relative(root, path)
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel)) ? rel : undefined
}
