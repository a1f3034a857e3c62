import { readFileSync } from 'node:fs'
import { InvalidOptionsError } from '../errors.js'

/** MemTotal and MemAvailable of /proc/meminfo, in MiB; undefined where it cannot be read. */
export function hostMemoryMiB(meminfo?: string): { totalMiB: number; availableMiB: number } | undefined {
  let text = meminfo
  if (text === undefined) {
    try {
      text = readFileSync('/proc/meminfo', 'utf8')
    } catch {
      return undefined
    }
  }
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text!)
    return match ? Math.floor(Number(match[1]) / 1024) : undefined
  }
  const totalMiB = field('MemTotal')
  if (totalMiB === undefined) return undefined
  return { totalMiB, availableMiB: field('MemAvailable') ?? totalMiB }
}

/**
 * The least guest memory vmctl's guest boots in. Below it the failure was nothing a user could act
 * on: at 64 MiB (TCG, the default kernel) the guest printed nothing and the boot ran into its 180 s
 * timeout, whose message blames a slow host; at 1 MiB QEMU refused the initrd in its own words. 128
 * MiB boots (the guest sees 79 MiB of it).
 */
export const MIN_GUEST_MEMORY_MIB = 128

/**
 * Refuses guest memory the host does not have, or too little to boot, before QEMU starts (QEMU's own failure is raw text,
 * or a guest that swaps the host to a halt). The limit is MemTotal, not MemAvailable: guest RAM is
 * allocated as the guest touches it, so a 4 GiB guest that uses 300 MiB runs on a host with 2 GiB
 * free, and MemAvailable moves with whatever else runs (other VMs), which would make a boot pass
 * or fail by chance. MemAvailable is named in the message as the better guide.
 */
export function checkGuestMemory(memoryMiB: number, meminfo?: string): void {
  if (memoryMiB < MIN_GUEST_MEMORY_MIB) {
    throw new InvalidOptionsError(
      `memoryMiB ${memoryMiB} is too little for the guest: its kernel, initramfs and agent need at least ${MIN_GUEST_MEMORY_MIB} MiB. Fix: set memoryMiB to ${MIN_GUEST_MEMORY_MIB} or more (the default is 1024)`,
    )
  }
  const host = hostMemoryMiB(meminfo)
  if (!host || memoryMiB <= host.totalMiB) return
  throw new InvalidOptionsError(
    `memoryMiB ${memoryMiB} is more than this host has (${host.totalMiB} MiB in all, ${host.availableMiB} MiB available now). Fix: set memoryMiB to at most ${host.totalMiB} (the default is 1024; guest memory is allocated only as the guest uses it, so keep it near what the test needs)`,
  )
}
