import { closeSync, constants, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { release as osRelease } from 'node:os'
import { join } from 'node:path'
import { InvalidOptionsError } from '../errors.js'

export type Accelerator = 'kvm' | 'tcg'

export interface AcceleratorChoice {
  accel: Accelerator
  /** KVM that has not proven itself on this host yet: boot under a short sign-of-life bound. */
  probe: boolean
  /** Why TCG, in words a user can act on (empty for KVM). */
  reason: string
}

/**
 * How long a KVM guest may stay silent on the console before KVM is declared unusable. A stock
 * kernel under working KVM prints its first init line in well under a second; under the
 * paravirtual KVM (kvm-pvm) of some cloud VMs it takes 30 s or more and then dies with
 * "KVM internal error" (docs/prototype-measurements.md section 0).
 */
export const KVM_PROBE_MS = 8_000

interface Verdict {
  key: string
  usable: boolean
  reason: string
  decidedAt: string
}

/**
 * KVM when it is usable, else TCG. "Usable" is measured: /dev/kvm that opens is not enough, so
 * the first boot on a host probes it and the verdict is cached for the host (VMCTL_ACCEL=kvm|tcg
 * overrides both the probe and the cache).
 */
export function chooseAccelerator(
  cacheDir: string,
  env: NodeJS.ProcessEnv = process.env,
  requested?: string,
): AcceleratorChoice {
  const forced = requested ?? env.VMCTL_ACCEL
  if (forced === 'tcg')
    return { accel: 'tcg', probe: false, reason: `${requested ? 'accel option' : 'VMCTL_ACCEL'}=tcg` }
  if (forced && forced !== 'kvm' && forced !== 'auto') {
    throw new InvalidOptionsError(
      `accel must be "kvm", "tcg" or "auto", not ${JSON.stringify(forced)} (VMCTL_ACCEL or the accel option)`,
    )
  }
  const access = kvmAccess()
  if (forced === 'kvm') {
    if (access !== 'ok') throw new InvalidOptionsError(`KVM was requested but ${access}`)
    return { accel: 'kvm', probe: false, reason: '' }
  }
  if (access !== 'ok') return { accel: 'tcg', probe: false, reason: access }
  const verdict = readVerdict(cacheDir)
  if (verdict?.usable) return { accel: 'kvm', probe: false, reason: '' }
  if (verdict)
    return {
      accel: 'tcg',
      probe: false,
      reason: `${verdict.reason} (verdict cached in ${verdictPath(cacheDir)}; delete it to probe again)`,
    }
  return { accel: 'kvm', probe: true, reason: '' }
}

export function recordVerdict(cacheDir: string, usable: boolean, reason: string): void {
  const verdict: Verdict = { key: hostKey(), usable, reason, decidedAt: new Date().toISOString() }
  mkdirSync(cacheDir, { recursive: true })
  writeFileSync(verdictPath(cacheDir), `${JSON.stringify(verdict, null, 2)}\n`)
}

function kvmAccess(): 'ok' | string {
  try {
    const fd = openSync('/dev/kvm', constants.O_RDWR)
    closeSync(fd)
    return 'ok'
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT')
      return '/dev/kvm does not exist (no hardware virtualization here, or the kvm module is not loaded)'
    if (code === 'EACCES' || code === 'EPERM') {
      return 'no access to /dev/kvm (permission denied); fix: sudo usermod -aG kvm $USER and log in again, or a udev rule giving /dev/kvm mode 0666'
    }
    return `/dev/kvm cannot be opened (${code})`
  }
}

function verdictPath(cacheDir: string): string {
  return join(cacheDir, 'kvm-verdict.json')
}

/** The verdict holds for this host kernel and this /dev/kvm; a new kernel or device probes again. */
function hostKey(): string {
  let device = 'none'
  try {
    const stat = statSync('/dev/kvm')
    device = String(stat.rdev)
  } catch {}
  return `${osRelease()}|${device}`
}

function readVerdict(cacheDir: string): Verdict | undefined {
  try {
    const verdict = JSON.parse(readFileSync(verdictPath(cacheDir), 'utf8')) as Verdict
    return verdict.key === hostKey() ? verdict : undefined
  } catch {
    return undefined
  }
}

/** Host TSC frequency in kHz, for `tsc_early_khz` (see qemu-command.ts), from /proc/cpuinfo. */
export function hostTscKhz(cpuinfo = safeRead('/proc/cpuinfo')): number | undefined {
  const nominal = cpuinfo.match(/model name\s*:.*@\s*([\d.]+)\s*GHz/)
  if (nominal?.[1]) return Math.round(Number.parseFloat(nominal[1]) * 1_000_000)
  const mhz = cpuinfo.match(/cpu MHz\s*:\s*([\d.]+)/)
  if (mhz?.[1]) return Math.round(Number.parseFloat(mhz[1]) * 1000)
  return undefined
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}
