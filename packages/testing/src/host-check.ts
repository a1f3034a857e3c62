import { assertSupportedHost, locateKernel, locateQemu } from '@vmctl/core'

/** `VMCTL_REQUIRE=1`: a host that cannot run VMs fails the tests instead of skipping them. */
export const REQUIRE_ENV = 'VMCTL_REQUIRE'

/** Error codes that mean "this host cannot run VMs" rather than "this VM failed". */
const UNUSABLE_CODES = new Set([
  'UNSUPPORTED_HOST',
  'QEMU_NOT_FOUND',
  'KERNEL_NOT_FOUND',
  'KERNEL_FETCH_FAILED',
  'BUSYBOX_NOT_FOUND',
])

let cached: { reason: string | undefined } | undefined

/**
 * Why VMs cannot run on this host, or undefined when they can (as far as can be told without
 * booting one): an x86-64 Linux host, QEMU must be found, and a kernel named by VMCTL_KERNEL must exist. A missing default
 * kernel or busybox is not a reason: VM.up() fetches them (and an offline host then fails with
 * KERNEL_FETCH_FAILED, which isHostUnusable() counts). Checked once per process.
 */
export function vmsUnavailableReason(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (cached) return cached.reason
  let reason: string | undefined
  try {
    assertSupportedHost()
    locateQemu(env)
    if (env.VMCTL_KERNEL) locateKernel({ env })
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
