import type { logger } from '../log.js'
import type { AgentLink } from './agent-link.js'
import type { AgentProxy } from './agent-proxy.js'
import type { ConsoleLog } from './console-log.js'
import type { ControlEvent, VmStatus } from './control-protocol.js'
import type { DiskHotplug } from './disk-hotplug.js'
import { replugDisks } from './disk-replug.js'
import { endGuest } from './guest-power.js'
import type { QemuProcess } from './qemu-process.js'
import { publicState, type VmLifecycle } from './vm-lifecycle.js'

/** What power-cycle needs from the supervisor: given, never imported (see supervisor.ts). */
export interface PowerContext {
  lifecycle: VmLifecycle
  link: AgentLink
  proxy: AgentProxy
  console: ConsoleLog
  diskHotplug: DiskHotplug
  /** Where the agent's gRPC clients connect (the disks' re-plug; the power-off's fallback). */
  agentSocket: string
  /** Where the agent's call-lane clients connect (the power-off request). */
  rawSocket: string
  log: ReturnType<typeof logger>
  warn: (message: string) => void
  /** The VM's QEMU: the running one, or the last one to have run. */
  qemu: () => QemuProcess | undefined
  /** Brings a new QEMU to ready (boot-sequence.ts): a template clone when `templates`, else cold. */
  bringUp: (templates: boolean) => Promise<unknown>
  /** A start may clone the definition's template: templates on, and no disk of its own (kernel mode). */
  cloneOnStart: boolean
  broadcast: (event: ControlEvent) => void
  status: () => VmStatus
}

/**
 * `vm.stop()`, `vm.start()`, `vm.restart()`, and QEMU ending without being asked: the VM's moves
 * between ready and stopped (vm-lifecycle.ts has the table). The supervisor stays through them all,
 * with the VM's directory, disks and host ports; only its QEMU comes and goes.
 */
export class PowerCycle {
  private readonly ctx: PowerContext

  constructor(ctx: PowerContext) {
    this.ctx = ctx
  }

  /** `vm.stop()`: the guest powers off (forced after a bound); the VM stays, stopped. Idempotent. */
  async stop(): Promise<{ how: string; alreadyStopped?: boolean }> {
    const { lifecycle } = this.ctx
    if (lifecycle.is('stopped')) return { how: 'it was already stopped', alreadyStopped: true }
    lifecycle.assertReady()
    lifecycle.to('powering-off')
    const how = await endGuest(this.ctx.qemu()!, 'poweroff', this.ctx)
    this.stopped(how)
    return { how }
  }

  /** `vm.start()`: a stopped VM boots again from its disks. */
  async start(): Promise<void> {
    const { lifecycle } = this.ctx
    if (!lifecycle.is('stopped')) {
      const state = publicState(lifecycle.state)
      throw new Error(
        `the VM is ${state === 'ready' ? 'already running' : state}; start() boots a stopped VM`,
      )
    }
    lifecycle.to('starting')
    await this.bootAgain()
  }

  /** `vm.restart()`: the guest reboots (`hard`: a reset through QMP), then boots as start() does. */
  async restart(hard: boolean): Promise<{ how: string }> {
    this.ctx.lifecycle.assertReady()
    this.ctx.lifecycle.to('starting')
    const how = await endGuest(this.ctx.qemu()!, hard ? 'reset' : 'reboot', this.ctx)
    this.ctx.log('restarting: %s', how)
    this.ctx.link.detach('the VM is restarting')
    await this.bootAgain()
    return { how }
  }

  /** QEMU is gone, on purpose or (`unexpected`) not: the VM stays, stopped, its disks kept for start(). */
  stopped(how: string, unexpected = false): void {
    const { lifecycle, log } = this.ctx
    this.ctx.link.detach('the VM was stopped')
    if (!lifecycle.can('stopped')) return
    this.ctx.proxy.refuse()
    lifecycle.toStopped(how, unexpected)
    log('stopped%s: %s', unexpected ? ' (unasked)' : '', how)
    this.ctx.broadcast({ event: 'stopped', how, unexpected, consoleTail: this.ctx.console.lastLines() })
  }

  /** From `starting`: a new QEMU on the VM's disks, to ready. A failure leaves the VM stopped. */
  private async bootAgain(): Promise<void> {
    const { ctx } = this
    ctx.proxy.accept()
    try {
      // Image mode boots cold: a template's RAM predates what the guest wrote on its disk and could
      // hold the disk's blocks as they were then. Without a disk of its own a clone is a fresh boot.
      await ctx.bringUp(ctx.cloneOnStart)
      const qemu = ctx.qemu()!
      for (const warning of await replugDisks(ctx.diskHotplug, qemu, ctx.agentSocket)) ctx.warn(warning)
      // QEMU ending while `starting` is the start's to see (the supervisor leaves it to the
      // operation), and past bringUp's deadline nothing else watches it: a start is not ready on it.
      if (!qemu.alive) throw new Error(qemu.exitReason())
    } catch (error) {
      await ctx.qemu()?.kill()
      this.stopped(`the start failed: ${(error as Error).message}`)
      throw error
    }
    ctx.lifecycle.to('ready')
    ctx.broadcast({ event: 'ready', status: ctx.status() })
  }
}
