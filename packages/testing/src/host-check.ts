import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { locateKernel, locateQemu } from '@vmctl/core'

/** `VMCTL_REQUIRE=1`: a host that cannot run VMs fails the tests instead of skipping them. */
export const REQUIRE_ENV = 'VMCTL_REQUIRE'

/** Error codes that mean "this host cannot run VMs" rather than "this VM failed". */
const UNUSABLE_CODES = new Set(['QEMU_NOT_FOUND', 'KERNEL_NOT_FOUND', 'BUSYBOX_NOT_FOUND'])

let cached: { reason: string | undefined } | undefined

/**
 * Why VMs cannot run on this host, or undefined when they can (as far as can be told without
 * booting one): QEMU, a guest kernel and busybox must be found. Checked once per process.
 */
export function vmsUnavailableReason(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (cached) return cached.reason
  let reason: string | undefined
  try {
    locateQemu(env)
    locateKernel({ env })
    if (!onPath('busybox', `${env.PATH ?? ''}${delimiter}/bin${delimiter}/usr/bin`)) {
      reason = 'busybox was not found (it builds the guest init). Fix: sudo apt-get install busybox-static'
    }
  } catch (error) {
    reason = (error as Error).message
  }
  cached = { reason }
  return reason
}

/** Whether an error from booting a VM means the host cannot run VMs (so: skip, unless required). */
export function isHostUnusable(error: unknown): boolean {
  return UNUSABLE_CODES.has((error as { code?: string })?.code ?? '')
}

export function vmsRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  return !!env[REQUIRE_ENV] && env[REQUIRE_ENV] !== '0'
}

/** Thrown in place of a skip when VMCTL_REQUIRE=1. */
export class VmsUnavailableError extends Error {
  readonly code = 'VMS_UNAVAILABLE'
  constructor(reason: string) {
    super(`vmctl cannot run VMs on this host and ${REQUIRE_ENV}=1 is set: ${reason}`)
    this.name = 'VmsUnavailableError'
  }
}

function onPath(binary: string, path: string): boolean {
  return path.split(delimiter).some((dir) => {
    if (!dir) return false
    try {
      accessSync(join(dir, binary), constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}
