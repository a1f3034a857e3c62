import { type Deadline, withinDeadline } from './boot-deadline.js'
import { bootWatchingForHangs, startColdQemu } from './hang-retry.js'
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
  options: { templates: boolean; reuse?: QemuProcess | undefined; deadline: Deadline; guestPorts: string[] },
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
    qemu = await coldBoot(ctx, options.reuse?.alive ? options.reuse : startColdQemu(ctx), deadline, step)
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

/** A cold boot to ready: the agent's session up and the root mounted (readiness.ts). */
function coldBoot(
  ctx: TemplateContext,
  first: QemuProcess,
  deadline: Deadline,
  step: (what: string) => void,
) {
  return bootWatchingForHangs(
    ctx,
    first,
    () => startColdQemu(ctx),
    async (qemu) => {
      await ctx.link.connect(qemu)
      step('agent port connected')
      await untilReady(ctx.link.mux, qemu, deadline)
    },
    deadline,
  )
}
