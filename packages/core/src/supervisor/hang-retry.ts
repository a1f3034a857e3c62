import { DEFAULT_BOOT_TIMEOUT_KVM_MS, DEFAULT_BOOT_TIMEOUT_TCG_MS, type LaunchSpec } from '../launch-spec.js'
import { BootFailure, type Deadline, withinDeadline } from './boot-deadline.js'
import { hangBoundsFor, SOFT_LOCKUP } from './boot-progress.js'
import type { GuestSetupPort } from './guest-setup-port.js'
import { HungGuest, watchForHungGuest } from './hung-guest-watch.js'
import type { QemuProcess, QemuVariant } from './qemu-process.js'
import type { TemplateContext } from './template-clone.js'

/**
 * A guest booting from its first instruction (a cold boot to ready, or the boot that makes a
 * template) under the hung-guest watch (hung-guest-watch.ts): `boot(qemu)` is what the caller waits
 * for. A guest that stops making progress before it (no byte within the bounds of boot-progress.ts,
 * or its vCPUs not running) has its QEMU killed and the boot tried once more with a new one from
 * `start`, with a warning in `vm.warnings`; a second hang fails the boot, saying so, long before
 * the deadline would have.
 */
export async function bootWatchingForHangs(
  ctx: TemplateContext,
  first: QemuProcess,
  start: () => QemuProcess,
  boot: (qemu: QemuProcess) => Promise<void>,
  deadline: Deadline,
): Promise<QemuProcess> {
  let qemu = first
  let hungBefore: string | undefined
  for (;;) {
    const watch = watchForHungGuest(
      qemu,
      guestBytes(ctx, qemu),
      ctx.log,
      hangBoundsFor(ctx.definition.kernelArgs, ctx.definition.qemuArgs, {
        cpus: ctx.definition.cpus,
        slowBootDeclared: slowBootDeclared(ctx.definition),
      }),
      () => ctx.console.find(SOFT_LOCKUP)?.[0],
    )
    try {
      await withinDeadline(Promise.race([boot(qemu), watch.hung]), qemu, deadline)
      return qemu
    } catch (error) {
      if (!(error instanceof HungGuest) || ctx.goingDown()) throw error
      await qemu.kill()
      // The user's own -S: every QEMU would wait for a `cont` that vmctl never sends (with a gdb
      // stub, -s -S, the debugger continues it and this is not reached: boot-progress.ts).
      if (ctx.definition.qemuArgs.includes('-S'))
        throw new BootFailure(
          'BOOT_FAILED',
          `QEMU was told to start the guest paused (-S in qemuArgs) and nothing continues it (${error.message}): remove -S, or add -s (a gdb stub on tcp::1234) to continue it from gdb`,
        )
      if (hungBefore)
        throw new BootFailure(
          'BOOT_FAILED',
          `the guest hung twice during its boot (${hungBefore}; then ${error.message}); the supervisor log has what QMP said of its vCPUs`,
        )
      hungBefore = error.message
      ctx.warn(
        `the guest hung during its boot (${error.message}); its QEMU was killed and the boot tried once more`,
      )
      qemu = start()
    } finally {
      watch.stop()
    }
  }
}

/** What the guest of `qemu` sent so far: console bytes, setup port bytes, and its agent's handshake. */
function guestBytes(ctx: TemplateContext, qemu: QemuProcess): () => number {
  let port: GuestSetupPort | undefined
  void qemu.setupPort.then((connected) => {
    port = connected
  })
  return () => ctx.console.runBytes + (port?.bytesReceived ?? 0) + (ctx.link.mux.isReady ? 1 : 0)
}

/**
 * Test hooks for hung-boot.vm.test.ts, real QEMUs whose guests hang:
 * VMCTL_TEST_HANG_COLD_BOOTS=N: the first N QEMUs booting from their first instruction wait for a
 * migration that never comes (`-incoming defer`): a guest that never runs.
 * VMCTL_TEST_STOP_AFTER_FIRST_BYTE=N: the first N stop their vCPUs (QMP `stop`) once the guest's
 * first console bytes came: a guest that hangs after its first line.
 */
let hangsLeft = Number(process.env.VMCTL_TEST_HANG_COLD_BOOTS) || 0
let stopsLeft = Number(process.env.VMCTL_TEST_STOP_AFTER_FIRST_BYTE) || 0

/** Starts a QEMU whose guest boots from its first instruction (test hooks above). */
export function startColdQemu(ctx: TemplateContext, variant: QemuVariant = {}): QemuProcess {
  if (hangsLeft > 0) {
    hangsLeft--
    ctx.log('test hook VMCTL_TEST_HANG_COLD_BOOTS: this QEMU waits for a migration that never comes')
    return ctx.startQemu({ ...variant, incoming: true })
  }
  const qemu = ctx.startQemu(variant)
  if (stopsLeft > 0) {
    stopsLeft--
    stopAfterFirstByte(ctx, qemu).catch(() => {}) // a QEMU that exits first: nothing to stop
  }
  return qemu
}

async function stopAfterFirstByte(ctx: TemplateContext, qemu: QemuProcess): Promise<void> {
  while (qemu.alive && ctx.console.runBytes === 0) await new Promise((resolve) => setTimeout(resolve, 20))
  if (!qemu.alive) return
  ctx.log('test hook VMCTL_TEST_STOP_AFTER_FIRST_BYTE: stopping the vCPUs after the first console bytes')
  await (await qemu.connectQmp()).execute('stop').catch(() => {})
}

/** A bootTimeoutMs above its accelerator's default: the user expects a slow boot. */
function slowBootDeclared(spec: LaunchSpec): boolean {
  const standard = spec.accel.accel === 'kvm' ? DEFAULT_BOOT_TIMEOUT_KVM_MS : DEFAULT_BOOT_TIMEOUT_TCG_MS
  return spec.bootTimeoutMs !== undefined && spec.bootTimeoutMs > standard
}
