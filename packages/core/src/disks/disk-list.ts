import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { attachedDisks, disksDir, readManifest } from './disks-dir.js'

export interface ListedDisk {
  /** Its name in vmctl's disks directory; undefined for a file elsewhere that a VM has plugged in. */
  name: string | undefined
  path: string
  format: 'qcow2' | 'raw'
  /** The size the guest sees, when vmctl made it. */
  sizeMiB: number | undefined
  /** What it takes on the host's disk (qcow2 and sparse raw files grow as the guest writes). */
  bytesOnDisk: number
  persistent: boolean
  attachedTo: { vm: string; readOnly: boolean; serial: string }[]
}

/** The disks in vmctl's disks directory, and any other file a running VM has plugged in. */
export function listDisks(env: NodeJS.ProcessEnv = process.env): ListedDisk[] {
  const dir = disksDir(env)
  const attached = attachedDisks(env)
  const users = (path: string) =>
    [...attached].flatMap(([vm, disks]) =>
      disks.filter((d) => d.path === path).map((d) => ({ vm, readOnly: d.readOnly, serial: d.serial })),
    )
  const listed: ListedDisk[] = []
  for (const entry of readdirSync(dir).filter((e) => e.endsWith('.json'))) {
    const manifest = readManifest(join(dir, entry))
    if (!manifest) continue
    const path = join(dir, manifest.file)
    listed.push({
      name: manifest.name,
      path,
      format: manifest.format,
      sizeMiB: manifest.sizeMiB,
      bytesOnDisk: allocated(path),
      persistent: manifest.persistent,
      attachedTo: users(path),
    })
  }
  for (const disks of attached.values())
    for (const disk of disks)
      if (!listed.some((l) => l.path === disk.path))
        listed.push({
          name: undefined,
          path: disk.path,
          format: disk.format,
          sizeMiB: undefined,
          bytesOnDisk: allocated(disk.path),
          persistent: true,
          attachedTo: users(disk.path),
        })
  return listed.sort((a, b) => a.path.localeCompare(b.path))
}

function allocated(path: string): number {
  try {
    return statSync(path).blocks * 512
  } catch {
    return 0
  }
}
