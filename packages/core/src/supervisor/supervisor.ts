/**
 * The life of `VM.up()`, through two processes:
 *
 * Caller's process: `VM.up()` (vm/vm.ts) → `startVm()` (vm/start-vm.ts) → `prepareLaunch()`
 * (vm/prepare-launch.ts): options checked; kernel, initramfs, runtime disk and image resolved; the
 * VM's directory made (vm-directory.ts) with its `launch.json` (a LaunchSpec) → spawns
 * `node supervisor-main.js <dir>`, detached → connects to `control.sock`, attaches with a lease,
 * waits for the `ready` or `failed` event (docs/caller-side.md walks this half).
 *
 * Supervisor process: `supervisor-main.ts` → `Supervisor.run()` (this file): control socket and
 * agent proxy up → `boot()`: a KVM probe if KVM is unproven (kvm-probe.ts) → `bringUp()`
 * (boot-sequence.ts): with templates on, `TemplateClone.boot()` (template-clone.ts) clones the
 * definition's template (`loadState`, state-transfer.ts) or makes it first (a cold boot saved by
 * `saveState` before the root mounts, published once this VM is ready); else a cold boot. Each
 * QEMU is a QemuProcess (qemu-process.ts), each wait bounded by `withinDeadline` (boot-deadline.ts);
 * ready is `untilReady` (readiness.ts): the agent's session up (agent-link.ts), the root mounted.
 * Then `ready` goes to every client, and `vm.exec()` reaches the guest through `agent.sock`
 * (agent-proxy.ts). Requests (control-dispatch.ts): snapshots (snapshots.ts), stop/start/restart
 * (power-cycle.ts: the guest ended by guest-power.ts, then `bringUp()` again). The end:
 * `shutdown()`. States and their table: vm-lifecycle.ts.
 */
import type { Accelerator } from '../host/accelerator.js'
import type { LaunchSpec } from '../launch-spec.js'
import { logger } from '../log.js'
import { guestPortKey } from '../qemu/guest-port.js'
import { forwardedGuestPorts } from '../qemu/qemu-plan.js'
import { AgentLink } from './agent-link.js'
import { AgentProxy } from './agent-proxy.js'
import { asBootFailure, BootFailure, bootDeadline, bootTimeoutMs } from './boot-deadline.js'
import { type BroughtUp, bringUp } from './boot-sequence.js'
import { ConsoleLog } from './console-log.js'
import { type ControlHandlers, serveRequests } from './control-dispatch.js'
import type { ControlEvent, VmStatus } from './control-protocol.js'
import { ControlServer } from './control-server.js'
import { DiskFullPause, diskFullBootFailure } from './disk-full-pause.js'
import { DiskHotplug, type DiskRequest } from './disk-hotplug.js'
import type { EarlyQemu } from './early-qemu.js'
import { confirmKvm, kvmFailedBoot, probeKvm } from './kvm-probe.js'
import { rejoinNetworks } from './network-rejoin.js'
import { type LinkRequest, NicLinks } from './nic-links.js'
import { addPortForward, type ForwardRequest } from './port-forwards.js'
import { PowerCycle } from './power-cycle.js'
import { QemuProcess, type QemuVariant } from './qemu-process.js'
import { mark } from './restore-timeline.js'
import { Snapshots } from './snapshots.js'
import { SparePark } from './spare-park.js'
import type { TemplateContext } from './template-clone.js'
import type { VmDirectory } from './vm-directory.js'
import { publicState, VmLifecycle } from './vm-lifecycle.js'

/** After QMP `quit`, how long QEMU gets before SIGKILL. */
const QUIT_GRACE_MS = 2_000

/** How long a boot that failed waits for its creator to attach and hear why (untilAttached). */
const CREATOR_ATTACH_MS = 5_000

/**
 * Owns one VM, in its own detached process: spawns QEMU (which dies with it: PR_SET_PDEATHSIG),
 * holds the agent channel, serves clients, and tears everything down when the VM's owners are
 * gone (the last lease's socket closes, whatever killed its holder). The orchestrator: the parts
 * (files beside this one) own their state and emit events; this class listens and decides how the
 * VM ends. The requests' parts (power-cycle.ts, snapshots.ts) move the one lifecycle they are
 * given (vm-lifecycle.ts), whose table refuses any move it does not list. No part imports this file.
 */
export class Supervisor implements ControlHandlers {
  private readonly dir: VmDirectory
  private readonly spec: LaunchSpec
  private readonly log
  private readonly lifecycle = new VmLifecycle()
  private readonly console: ConsoleLog
  private readonly link: AgentLink
  private readonly control = new ControlServer()
  private readonly proxy: AgentProxy
  private readonly snapshots: Snapshots
  private readonly power: PowerCycle
  /** A spare's wait for the VM.up() that takes it (spare-park.ts); idle in any other VM. */
  private readonly spare: SparePark
  private accel: Accelerator
  private accelReason: string
  /** The VM's QEMU: the running one, or the last one to have run. */
  private qemu: QemuProcess | undefined
  /** How this VM's QEMUs start after its boot (a snapshot rollback maps a template's RAM again). */
  private variant: QemuVariant = {}
  private ports: Record<string, number> = {}
  private bootMs: number | undefined
  private teardown: Promise<void> | undefined
  private readonly warnings: string[] = []
  private template: VmStatus['template']
  /** The VM's plugged disks (disk-hotplug.ts), kept while it is stopped and plugged into each new QEMU. */
  private readonly diskHotplug: DiskHotplug
  private readonly nicLinks = new NicLinks() // network NICs' links, kept across QEMUs
  /** A guest QEMU paused because a disk file's filesystem is full (disk-full-pause.ts). */
  private readonly diskFull: DiskFullPause
  readonly setLink = (link: LinkRequest) =>
    this.nicLinks.handle(link, this.qemu?.alive ? this.qemu.qmp : undefined)

  /** The clone's QEMU, started before this process loaded (early-qemu.ts), until a start takes it. */
  private early: EarlyQemu | undefined

  constructor(dir: VmDirectory, spec: LaunchSpec, early?: EarlyQemu) {
    this.dir = dir
    this.spec = spec
    this.early = early
    this.log = logger('supervisor', spec.name)
    this.accel = spec.accel.accel
    this.accelReason = spec.accel.reason
    this.console = new ConsoleLog(dir.consoleLog)
    this.diskHotplug = new DiskHotplug(dir.disksFile, this.log)
    this.diskFull = new DiskFullPause(this.log)
    this.diskFull.on('paused', (paused) => {
      this.writeStatus()
      this.control.broadcast({ event: 'disk-full', paused })
      // A boot (start, restore) waiting on the paused guest fails now, naming the file.
      if (this.lifecycle.is('booting', 'starting', 'restoring'))
        this.qemu?.failBoot(diskFullBootFailure(paused))
    })
    this.diskFull.on('resumed', () => {
      this.writeStatus()
      this.control.broadcast({ event: 'disk-room' })
    })
    this.link = new AgentLink(spec, dir, this.log)
    this.proxy = new AgentProxy(this.link.mux)
    this.spare = new SparePark(
      dir,
      spec,
      this.log,
      () => this.writeStatus(),
      (reason) => void this.shutdown(reason),
    )
    // What the request parts (snapshots.ts, power-cycle.ts) share: they move the lifecycle through
    // its table; how the VM ends (end(), shutdown()) stays decided here.
    const parts = { lifecycle: this.lifecycle, link: this.link, log: this.log, qemu: () => this.qemu }
    this.snapshots = new Snapshots({
      ...parts,
      dir,
      spec,
      diskHotplug: this.diskHotplug,
      nicLinks: this.nicLinks,
      startIncoming: () => this.startQemu({ ...this.variant, incoming: true }, this.ports),
      stopQemu: async () => this.qemu?.kill(),
      lost: (reason) => {
        this.end({ event: 'exited', reason, consoleTail: this.console.lastLines() })
        void this.shutdown(reason)
      },
    })
    this.power = new PowerCycle({
      ...parts,
      proxy: this.proxy,
      console: this.console,
      diskHotplug: this.diskHotplug,
      agentSocket: dir.agentSocket,
      rawSocket: dir.rawSocket,
      warn: (message) => this.warn(message),
      // A start's or restart's new guest: its network addresses and names again (the first boot's
      // come from VM.up), before the disks' re-plug and the check that QEMU still runs.
      bringUp: async (templates) => {
        const up = await this.bringUp(templates)
        const warning = await rejoinNetworks(this.spec, this.dir)
        if (warning) this.warn(warning)
        return up
      },
      cloneOnStart: spec.templates && !spec.image,
      broadcast: (event) => this.control.broadcast(event),
      status: () => this.status(),
    })
    this.lifecycle.on('change', (to, from) => {
      this.log('%s → %s', from, to)
      this.writeStatus()
    })
    this.link.on('lost', (reason, how) => {
      if (!this.lifecycle.is('ready', 'snapshotting')) return
      // The guest closed the port: without a reset the host would only learn when the restarted
      // agent announces itself, seconds later.
      if (how === 'port-closed') this.link.mux.resetPeer(reason)
      this.control.broadcast({ event: 'agent-lost', reason })
    })
    serveRequests(this.control, this, this.log)
    this.control.on('last-lease-gone', () => {
      if (!this.spec.persistent) void this.shutdown('the process that created the VM exited')
    })
  }

  async run(): Promise<void> {
    this.log('supervisor running %d ms after its process started', Math.round(performance.now()))
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
      process.on(signal, () => void this.shutdown(`supervisor received ${signal}`))
    this.writeStatus()
    await this.control.listen(this.dir.controlSocket)
    await this.proxy.listen(this.dir.agentSocket, this.dir.rawSocket)
    mark(this.spec.name, 'supervisor: sockets listening')
    // A lone spare's creator has gone on its way: it waits for an adoption, not for a lease.
    if (!this.spec.persistent && this.spec.spareIdleMs === undefined)
      void this.control
        .watchCreator(this.spec.creatorPid, () => this.lifecycle.goingDown)
        .then((orphaned) => orphaned && void this.shutdown(orphaned))
    try {
      await this.boot()
    } catch (error) {
      const failure = asBootFailure(error)
      this.log('boot failed: %s', failure.message)
      if (this.accel === 'kvm') kvmFailedBoot(this.spec.cacheDir, this.qemu)
      const timeoutMs = bootTimeoutMs(this.spec, this.accel)
      const payload = failure.payload(this.console.lastLines(), this.dir.consoleLog, this.accel, timeoutMs)
      const usage = failure.code === 'BOOT_TIMEOUT' ? this.qemu?.usage() : undefined
      if (usage) payload.qemu = usage
      this.end({ event: 'failed', error: payload })
      // A failure before the creator attached (a bad template found at once, say): it hears the
      // cause on attaching, not a socket closed without a word. Nobody attaches to a lone spare.
      if (this.spec.spareIdleMs === undefined) await this.control.untilAttached(CREATOR_ATTACH_MS)
      await this.shutdown(`boot failed: ${failure.message}`)
    }
  }

  private async boot(): Promise<void> {
    const started = performance.now()
    let probing: QemuProcess | undefined
    if (this.spec.accel.accel === 'kvm' && this.spec.accel.probe) {
      probing = this.startQemu({})
      const probe = await probeKvm(probing, this.spec.cacheDir)
      if (probe !== 'probation') {
        this.accel = 'tcg'
        this.accelReason = probe.tcg
        probing = undefined
      }
    }
    // A probe's boot goes on cold: it makes no template (its accelerator was not proven yet).
    const up = await this.bringUp(this.spec.templates && !probing, probing)
    this.template = up.template
    if (probing) confirmKvm(this.spec.cacheDir)
    // A spare is ready for the VM.up() that takes it when it has its name: its boot is the adoption's.
    const adopted = this.spec.spare && this.qemu ? await this.spare.hold(this.qemu) : started
    this.bootMs = performance.now() - adopted
    this.lifecycle.to('ready')
    const from = up.template ? ', from a template' : ''
    this.log('ready in %d ms (%s%s)', Math.round(this.bootMs), this.accel, from)
    this.control.broadcast({ event: 'ready', status: this.status() })
    mark(this.spec.name, 'supervisor: ready sent')
  }

  /** Brings this VM's QEMU to ready (boot-sequence.ts) and keeps what later QEMUs need. */
  private async bringUp(templates: boolean, reuse?: QemuProcess): Promise<BroughtUp> {
    const up = await bringUp(this.templateContext(), {
      templates,
      reuse,
      deadline: bootDeadline(bootTimeoutMs(this.spec, this.accel)),
      // The spec's and those forwarded since (vm.forwardPort): a new QEMU forwards them all.
      guestPorts: forwardedGuestPorts(this.spec.guestPorts, this.ports),
    })
    if (this.lifecycle.goingDown) throw new BootFailure('BOOT_FAILED', 'the VM is shutting down')
    this.variant = up.variant
    this.ports = up.ports
    if (this.qemu?.qmp) this.diskFull.watch(this.qemu.qmp)
    await this.nicLinks.reapply(this.qemu?.qmp, this.log)
    return up
  }

  private templateContext(): TemplateContext {
    return {
      // The accelerator in use, not the one asked for: after a failed KVM probe a TCG VM must not
      // make (or find) a template under KVM's key.
      definition: { ...this.spec, accel: { ...this.spec.accel, accel: this.accel } },
      console: this.console,
      link: this.link,
      agentSocket: this.dir.agentSocket,
      rawSocket: this.dir.rawSocket,
      log: this.log,
      warn: (message) => this.warn(message),
      startQemu: (variant) => this.startQemu(variant),
      goingDown: () => this.lifecycle.goingDown,
    }
  }

  /**
   * Starts this VM's QEMU, with the host ports it had (none yet at the first boot: the kernel picks).
   * Refused once the teardown began: a QEMU started after it would outlive it.
   */
  private startQemu(variant: QemuVariant, hostPorts = this.ports): QemuProcess {
    if (this.lifecycle.goingDown) throw new BootFailure('BOOT_FAILED', 'the VM is shutting down')
    const qemu = new QemuProcess({
      spec: this.spec,
      accel: this.accel,
      dir: this.dir,
      console: this.console,
      log: this.log,
      variant,
      hostPorts,
      commandPrefix: this.link.commandPrefix(),
      early: this.early,
    })
    this.early = undefined
    this.qemu = qemu
    qemu.on('exit', (reason) => this.onQemuExit(qemu, reason))
    // From its start: a guest paused for a full disk while it boots fails the boot, not its deadline.
    qemu.connectQmp().then(
      (qmp) => this.qemu === qemu && this.diskFull.watch(qmp),
      () => {},
    )
    this.writeStatus()
    return qemu
  }

  private onQemuExit(qemu: QemuProcess, reason: string): void {
    if (qemu !== this.qemu) return
    this.link.detach(reason)
    this.writeStatus()
    // Booting, restoring: the operation under way sees it through withinDeadline and decides.
    if (this.lifecycle.qemuExitIsAwaited || this.lifecycle.goingDown) return
    // Not asked for (killed from outside, the guest powered off or panicked): the VM stays defined,
    // stopped with the cause, and start() boots it again. Its owner's death still ends it.
    this.power.stopped(reason, true)
  }

  private warn(message: string): void {
    this.log('warning: %s', message)
    this.warnings.push(message)
  }

  /** Records how the VM ended (once: the first cause is the one clients hear) and tells them. */
  private end(event: ControlEvent): void {
    if (this.lifecycle.end(event)) this.control.broadcast(event)
  }

  // Stop, start and restart: power-cycle.ts.
  readonly stop = () => this.power.stop()
  readonly start = () => this.power.start()
  readonly restart = (hard: boolean) => this.power.restart(hard)

  /** A guest port forwarded while the VM runs (port-forwards.ts), told to every attached client. */
  async forwardPort(request: ForwardRequest): Promise<Record<string, unknown>> {
    const qmp = this.qemu?.alive ? this.qemu.qmp : undefined
    if (!qmp || !this.lifecycle.is('ready'))
      throw new Error(`the VM is ${publicState(this.lifecycle.state)}, not running: start it first`)
    const hostPort = await addPortForward(qmp, this.ports, request)
    const key = guestPortKey({ port: request.guestPort, protocol: request.protocol ?? 'tcp' })
    this.ports = { ...this.ports, [key]: hostPort }
    this.writeStatus()
    this.control.broadcast({ event: 'ports', ports: this.ports })
    return { hostPort }
  }

  // Snapshots and rollbacks: snapshots.ts.
  readonly snapshot = (name: string) => this.snapshots.take(name)
  readonly rollback = (name: string) => this.snapshots.restore(name)

  status(): VmStatus {
    return {
      name: this.spec.name,
      state: publicState(this.lifecycle.state),
      pid: process.pid,
      qemuPid: this.qemu?.alive ? this.qemu.pid : undefined,
      accel: this.accel,
      accelReason: this.accelReason,
      transport: this.spec.transport.transport,
      vsockCid: this.link.vsockCid,
      warnings: this.warnings,
      template: this.template,
      createdAt: this.spec.createdAt,
      persistent: this.spec.persistent,
      ports: this.ports,
      bootMs: this.bootMs,
      stopped: this.lifecycle.stopCause,
      diskFull: this.diskFull.paused,
      spare: this.spare.state,
      fromSpare: this.spare.formerName,
    }
  }

  /** Events a client that attaches now must get: how the VM ended, or that it is ready. */
  catchUp(): ControlEvent[] {
    const { outcome } = this.lifecycle
    if (outcome) return [outcome]
    return publicState(this.lifecycle.state) === 'ready' ? [{ event: 'ready', status: this.status() }] : []
  }

  /** Plugs, unplugs or lists hot-plugged disks (disk-hotplug.ts). */
  disks(request: DiskRequest): Promise<Record<string, unknown>> {
    return this.diskHotplug.handle(request, this.qemu?.qmp, publicState(this.lifecycle.state))
  }

  adopt(adoption: { name: string; createdAt: string }): Promise<void> {
    // Ending (an idle spare's time ran out, `vmctl down`): its taker boots its own, at once.
    if (this.lifecycle.goingDown) return Promise.reject(new Error('this spare is being torn down'))
    return this.spare.adopt(adoption)
  }

  destroy(replied: () => void): Promise<void> {
    return this.shutdown('destroyed on request', replied)
  }

  private writeStatus(): void {
    try {
      this.dir.writeStatus(this.status())
    } catch {}
  }

  /** Stops QEMU (QMP quit, then SIGKILL), closes every socket, removes the VM directory, exits. */
  shutdown(reason: string, beforeClose?: () => void): Promise<void> {
    if (this.teardown) {
      if (beforeClose) void this.teardown.then(beforeClose)
      return this.teardown
    }
    this.log('shutting down: %s', reason)
    mark(this.spec.name, `supervisor: shutting down (${reason})`)
    this.lifecycle.to('stopping')
    this.proxy.refuse()
    this.diskFull.stop()
    this.early?.discard()
    this.control.endWatches() // the VM leaves its networks now: a next `vmctl run` may take its names
    this.teardown = (async () => {
      const qemu = this.qemu
      const how = await qemu?.quit(QUIT_GRACE_MS)
      if (how) this.log('QEMU stopped by %s', how)
      await qemu?.exited
      mark(this.spec.name, 'supervisor: QEMU gone')
      this.link.close(reason)
      this.end({ event: 'exited', reason, consoleTail: '' })
      this.lifecycle.to('exited')
      this.proxy.close()
      this.console.close()
      this.dir.remove()
      mark(this.spec.name, 'supervisor: VM directory removed')
      beforeClose?.()
      // Let the last events and replies flush, then go.
      setTimeout(() => process.exit(0), 100).unref()
      this.control.close()
    })()
    return this.teardown
  }
}
