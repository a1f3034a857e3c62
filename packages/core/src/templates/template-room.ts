import { CACHE_FIX, freeMiB } from '../util/disk-full.js'
import { templatesDir } from './template-store.js'

/**
 * What a template's making must find free in the cache's filesystem, at most: its RAM file is as
 * large as the guest's memory but sparse, holding what the guest touched before the save (~200 MB
 * of a 1 GiB kernel-mode guest here). A making that runs out anyway is caught as it happens
 * (template-clone.ts): QEMU's RAM is that file, and a page it cannot get is a SIGBUS.
 */
export const TEMPLATE_ROOM_FLOOR_MIB = 512

const FIX = `Fix: ${CACHE_FIX} (VMCTL_TEMPLATES=0 boots every VM cold, without this warning)`

/**
 * Why no template of a `memoryMiB` guest can be made in `cacheDir` now (a warning for the user:
 * this VM then boots cold), or undefined when there is room enough to try.
 */
export function noRoomForTemplate(cacheDir: string, memoryMiB: number): string | undefined {
  const dir = templatesDir(cacheDir)
  const free = freeMiB(dir)
  const needed = Math.min(memoryMiB, TEMPLATE_ROOM_FLOOR_MIB)
  if (free === undefined || free >= needed) return undefined
  return `no VM template was made: the filesystem of ${dir} has ${free} MiB free, and a template of this VM needs up to ${needed} MiB there; this VM boots without one (a cold boot), as will the next until there is room. ${FIX}`
}

/** The warning for a template's making that ran out of room part way (its QEMU got a SIGBUS). */
export function templateRanOutOfRoom(cacheDir: string): string {
  const dir = templatesDir(cacheDir)
  const free = freeMiB(dir)
  return `no VM template was made: the filesystem of ${dir} filled up while the template's RAM was written there (its QEMU was killed by SIGBUS${free === undefined ? '' : `; ${free} MiB free after its files were removed`}); this VM boots without one (a cold boot). ${FIX}`
}
