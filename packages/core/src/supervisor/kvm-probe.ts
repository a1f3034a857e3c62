import { KVM_PROBE_MS, recordVerdict } from '../host/accelerator.js'
import { BootFailure } from './boot-deadline.js'
import type { QemuProcess } from './qemu-process.js'

/**
 * The first boot on a host whose KVM has not proven itself: `qemu` was started under KVM, and the
 * console must speak within KVM_PROBE_MS. Alive is not yet usable: the caller records the verdict
 * once this boot is ready (confirmKvm), or a failed one says KVM is not (kvmFailedBoot). Returns
 * 'probation' (keep booting this QEMU) or the reason to fall back to TCG (verdict recorded, QEMU
 * killed). Throws a BootFailure when QEMU refused to start for a reason of its own (bad qemuArgs).
 */
export async function probeKvm(qemu: QemuProcess, cacheDir: string): Promise<'probation' | { tcg: string }> {
  const probe = await qemu.probe(KVM_PROBE_MS)
  const kvmError = qemu.kvmError()
  if (probe === 'alive') return 'probation'
  if (probe === 'exited' && !kvmError) throw new BootFailure('BOOT_FAILED', qemu.exitReason())
  const reason = kvmError
    ? `KVM at /dev/kvm failed a test boot (${kvmError.trim()})`
    : `KVM at /dev/kvm opened but a test guest showed no sign of life within ${KVM_PROBE_MS / 1000} s (a paravirtual or broken KVM)`
  recordVerdict(cacheDir, false, reason)
  await qemu.kill()
  return { tcg: reason }
}

/** A boot on probation became ready: KVM is usable on this host. */
export function confirmKvm(cacheDir: string): void {
  recordVerdict(cacheDir, true, '')
}

/** KVM that fails a real boot is not usable, whatever a probe said: later boots use TCG. */
export function kvmFailedBoot(cacheDir: string, qemu: QemuProcess | undefined): void {
  const kvmError = qemu?.kvmError()
  if (kvmError) recordVerdict(cacheDir, false, `KVM at /dev/kvm failed a boot (${kvmError.trim()})`)
}
