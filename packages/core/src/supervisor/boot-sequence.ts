import { BootFailure, type Deadline, withinDeadline } from './boot-deadline.js'
import { hangBoundsFor } from './boot-progress.js'
import type { GuestSetupPort } from './guest-setup-port.js'
import { HungGuest, watchForHungGuest } from './hung-guest-watch.js'
import type { QemuProcess, QemuVariant } from './qemu-process.js'
import { untilReady } from './readiness.js'
import { TemplateClone, type TemplateContext } from './template-clone.js'

/** A VM's QEMU brought to ready. */
export interface BroughtUp {
  qemu: QemuProcess
  /** Cloned from this template (`made`: this boot made it first); absent for a cold boot. */
  template?: { key: string; made: boolean }
  /** How this VM's later QEMUs start (a snapshot rollback maps the template's RAM again). */
  variant: QemuVariant
  /** guest port → host port */
  ports: Record<string, number>
}

/**
 * Brings a VM's QEMU to ready, the same way for the first boot, `vm.start()` and `vm.restart()`:
 * a clone of the definition's template when `templates` (made first if missing: template-clone.ts),
 * else a cold boot, of `reuse` (the KVM probe's QEMU, still booting) or of a new QEMU. Ready is
 * the agent's session up and the root mounted (readiness.ts); then QMP is connected, the agent's
 * port watched, and the forwarded ports read. Every wait is bounded by `deadline`.
 */
export async function bringUp(
  ctx: TemplateContext,
  options: { templates: boolean; reuse?: QemuProcess | undefined; deadline: Deadline; guestPorts: number[] },
): Promise<BroughtUp> {
  const { deadline } = options
  // Each step's end, in the supervisor's log (DEBUG=vmctl:*): where a boot that stalls stands.
  const started = performance.now()
  const step = (what: string) =>
    ctx.log('bring-up: %s at %d ms', what, Math.round(performance.now() - started))
  const fromTemplate =
    options.templates && !options.reuse ? await new TemplateClone(ctx).boot(deadline) : undefined
  let qemu: QemuProcess
  if (fromTemplate) qemu = fromTemplate.qemu
  else {
    qemu = await coldBoot(ctx, options.reuse?.alive ? options.reuse : startCold(ctx), deadline, step)
  }
  step('agent answering, root mounted')
  const qmp = await withinDeadline(qemu.connectQmp(), qemu, deadline)
  ctx.link.watchPort(qmp)
  const ports = await withinDeadline(qemu.forwardedPorts(options.guestPorts), qemu, deadline)
  step('QMP connected, ports read')
  return {
    qemu,
    template: fromTemplate && { key: fromTemplate.key, made: fromTemplate.made },
    variant: fromTemplate?.variant ?? {},
    ports,
  }
}

/**
 * Test hook: the first N cold-boot QEMUs of this supervisor start waiting for a migration that
 * never comes (`-incoming defer`): a real QEMU whose guest never runs, for hung-boot.vm.test.ts.
 */
let hangsLeft = Number(process.env.VMCTL_TEST_HANG_COLD_BOOTS) || 0

function startCold(ctx: TemplateContext): QemuProcess {
  if (hangsLeft <= 0) return ctx.startQemu({})
  hangsLeft--
  ctx.log('test hook VMCTL_TEST_HANG_COLD_BOOTS: this QEMU waits for a migration that never comes')
  return ctx.startQemu({ incoming: true })
}

/**
 * A cold boot to ready. A guest that makes no progress before its first byte (console, ports:
 * hung-guest-watch.ts) is taken for hung: its QEMU is killed and the boot tried once more with a
 * new one, with a warning in `vm.warnings`; a second hang fails the boot, saying so, long before
 * the deadline would have.
 */
async function coldBoot(
  ctx: TemplateContext,
  first: QemuProcess,
  deadline: Deadline,
  step: (what: string) => void,
): Promise<QemuProcess> {
  let qemu = first
  let hungBefore: string | undefined
  for (;;) {
    const watch = watchForHungGuest(
      qemu,
      guestBytes(ctx, qemu),
      ctx.log,
      hangBoundsFor(ctx.definition.kernelArgs, ctx.definition.qemuArgs),
    )
    const booted = (async () => {
      await ctx.link.connect(qemu)
      step('agent port connected')
      await untilReady(ctx.link.mux, qemu, deadline)
    })()
    try {
      await withinDeadline(Promise.race([booted, watch.hung]), qemu, deadline)
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
          `the guest hung twice before sending its first byte (${hungBefore}; then ${error.message}); the supervisor log has what QMP said of its vCPUs`,
        )
      hungBefore = error.message
      ctx.warn(
        `the guest hung before sending its first byte (${error.message}); its QEMU was killed and the boot tried once more`,
      )
      qemu = startCold(ctx)
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
