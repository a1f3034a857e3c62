/**
 * The life of `VM.up()`, through two processes:
 *
 * Caller's process: `VM.up()` (vm/vm.ts) → `bootVm()` (vm/boot-vm.ts): options checked, kernel,
 * initramfs, runtime disk and image resolved, the VM's directory made (vm-directory.ts) and its
 * `launch.json` written (a LaunchSpec) → spawns `node supervisor-main.js <dir>`, detached → connects
 * to `control.sock`, attaches with a lease, and waits for the `ready` or `failed` event.
 *
 * Supervisor process: `supervisor-main.ts` → `Supervisor.run()` (this file): control socket and
 * agent proxy up → `boot()`: a KVM probe if KVM is unproven (kvm-probe.ts); then, with templates
 * on, `TemplateClone.boot()` (template-clone.ts): clone the definition's template (state-transfer
 * `loadState`), or make it first (a cold boot saved by `saveState` before the root mounts, then
 * cloned, published once this VM is ready); else a cold boot. Every QEMU is a QemuProcess
 * (qemu-process.ts); every wait is bounded by `withinDeadline` (boot-deadline.ts); "ready" is
 * `untilReady` (readiness.ts): the agent's session up (agent-link.ts) and the root mounted. Then
 * `ready` goes to every attached client, and `vm.exec()` reaches the guest through `agent.sock`
 * (agent-proxy.ts). Snapshots and rollbacks: snapshots.ts. The end: `shutdown()` below.
 */
import type { HealthClient } from '@vmctl/agent'
import type { Accelerator } from '../host/accelerator.js'
import type { LaunchSpec } from '../launch-spec.js'
import { logger } from '../log.js'
import { pollUntil } from '../util/timing.js'
import { AgentLink } from './agent-link.js'
import { AgentProxy } from './agent-proxy.js'
import { BootFailure, bootDeadline, bootTimeoutMs, withinDeadline } from './boot-deadline.js'
import { ConsoleLog } from './console-log.js'
import type { ControlEvent, ControlRequest, VmStatus } from './control-protocol.js'
import { type ControlClient, ControlServer } from './control-server.js'
import { confirmKvm, kvmFailedBoot, probeKvm } from './kvm-probe.js'
import { QemuProcess, type QemuVariant } from './qemu-process.js'
import { healthClient, untilReady } from './readiness.js'
import { Snapshots } from './snapshots.js'
import { TemplateClone } from './template-clone.js'
import { isAlive, type VmDirectory } from './vm-directory.js'
import { publicState, VmLifecycle } from './vm-lifecycle.js'

/** A VM nobody leased within this time was orphaned by a creator that died while starting it. */
const FIRST_LEASE_GRACE_MS = 20_000
/** After QMP `quit`, how long QEMU gets before SIGKILL. */
const QUIT_GRACE_MS = 2_000

/**
 * Owns one VM: spawns QEMU as its child, holds the agent channel, serves clients, and tears
 * everything down when the VM's owners are gone. One supervisor process per VM, detached from its
 * creator, so the same mechanism serves `vmctl up` (a VM outliving the CLI), VMs shared between
 * test workers (several leases), and cleanup after a crashed test runner (the lease socket closes
 * when the kernel reaps the runner, whatever killed it). QEMU runs under `setpriv --pdeathsig KILL`:
 * if this supervisor is SIGKILLed, the kernel kills QEMU too.
 *
 * The orchestrator: the parts (files beside this one) own their state and emit events; only this
 * class listens and decides, and only it moves the lifecycle (vm-lifecycle.ts). No part imports it.
 */
export class Supervisor {
  private readonly dir: VmDirectory
  private readonly spec: LaunchSpec
  private readonly log
  private readonly lifecycle = new VmLifecycle()
  private readonly console: ConsoleLog
  private readonly link: AgentLink
  private readonly control = new ControlServer()
  private readonly proxy: AgentProxy
  private readonly snapshots: Snapshots
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
  private health: HealthClient | undefined

  constructor(dir: VmDirectory, spec: LaunchSpec) {
    this.dir = dir
    this.spec = spec
    this.log = logger('supervisor', spec.name)
    this.accel = spec.accel.accel
    this.accelReason = spec.accel.reason
    this.console = new ConsoleLog(dir.consoleLog)
    this.link = new AgentLink(spec, dir, this.log)
    this.proxy = new AgentProxy(this.link.mux)
    this.snapshots = new Snapshots({
      dir,
      spec,
      link: this.link,
      log: this.log,
      qemu: () => this.qemu,
      startIncoming: () => this.startQemu({ ...this.variant, incoming: true }, this.ports),
      stopQemu: async () => this.qemu?.kill(),
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
    this.control.on('request', (request, client, reply) => void this.onRequest(request, client, reply))
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
    if (!this.spec.persistent) void this.watchCreator()
    try {
      await this.boot()
    } catch (error) {
      const failure =
        error instanceof BootFailure ? error : new BootFailure('BOOT_FAILED', (error as Error).message)
      this.log('boot failed: %s', failure.message)
      if (this.accel === 'kvm') kvmFailedBoot(this.spec.cacheDir, this.qemu)
      this.end({
        event: 'failed',
        error: {
          code: failure.code,
          message: failure.message,
          consoleTail: this.console.lastLines(),
          accel: this.accel,
          timeoutMs: bootTimeoutMs(this.spec, this.accel),
        },
      })
      await this.shutdown(`boot failed: ${failure.message}`)
    }
  }

  /**
   * Until the first lease, the VM belongs to the process that created it. One killed before it
   * attached (while this supervisor started) cannot close a lease: without this its VM would boot
   * and run for FIRST_LEASE_GRACE_MS (the chaos run saw 20 s).
   */
  private async watchCreator(): Promise<void> {
    const verdict = await pollUntil(
      () => (this.control.everLeased || this.teardown ? 'leased' : !isAlive(this.spec.creatorPid) && 'gone'),
      { timeoutMs: FIRST_LEASE_GRACE_MS, everyMs: 100 },
    )
    if (verdict === 'leased') return
    void this.shutdown(
      verdict === 'gone'
        ? 'the process that created the VM exited before attaching to it'
        : 'no process attached to the VM after it was started',
    )
  }

  private async boot(): Promise<void> {
    const started = performance.now()
    let kvmOnProbation = false
    if (this.spec.accel.accel === 'kvm' && this.spec.accel.probe) {
      const probe = await probeKvm(this.startQemu({}), this.spec.cacheDir)
      if (probe === 'probation') kvmOnProbation = true
      else {
        this.accel = 'tcg'
        this.accelReason = probe.tcg
        this.qemu = undefined
      }
    }
    const deadline = bootDeadline(bootTimeoutMs(this.spec, this.accel))
    const fromTemplate =
      !this.qemu && this.spec.templates ? await this.templateClone().boot(deadline) : undefined
    if (fromTemplate) {
      this.template = { key: fromTemplate.key, made: fromTemplate.made }
      this.variant = fromTemplate.variant
    } else {
      // The probe's QEMU, still booting; not a clone's, killed when the template failed it.
      const qemu = this.qemu?.alive ? this.qemu : this.startQemu({})
      await withinDeadline(this.link.connect(qemu), qemu, deadline)
      await withinDeadline(untilReady(this.link.mux, qemu, deadline), qemu, deadline)
    }
    const qemu = this.qemu!
    const qmp = await withinDeadline(qemu.connectQmp(), qemu, deadline)
    this.link.watchPort(qmp)
    this.ports = await qemu.forwardedPorts(this.spec.guestPorts)
    if (kvmOnProbation) confirmKvm(this.spec.cacheDir)
    if (this.lifecycle.goingDown) throw new BootFailure('BOOT_FAILED', 'the VM is shutting down')
    this.bootMs = performance.now() - started
    this.lifecycle.to('ready')
    this.log(
      'ready in %d ms (%s%s)',
      Math.round(this.bootMs),
      this.accel,
      fromTemplate ? ', from a template' : '',
    )
    this.control.broadcast({ event: 'ready', status: this.status() })
  }

  private templateClone(): TemplateClone {
    return new TemplateClone({
      // The accelerator in use, not the one asked for: after a failed KVM probe a TCG VM must not
      // make (or find) a template under KVM's key.
      definition: { ...this.spec, accel: { ...this.spec.accel, accel: this.accel } },
      console: this.console,
      link: this.link,
      health: () => {
        this.health ??= healthClient(this.dir.agentSocket)
        return this.health
      },
      log: this.log,
      warn: (message) => {
        this.log('warning: %s', message)
        this.warnings.push(message)
      },
      startQemu: (variant) => this.startQemu(variant),
      goingDown: () => this.lifecycle.goingDown,
    })
  }

  /** Starts this VM's QEMU. Refused once the teardown began: a QEMU started after it would outlive it. */
  private startQemu(variant: QemuVariant, hostPorts: Record<string, number> = {}): QemuProcess {
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
    })
    this.qemu = qemu
    qemu.on('exit', (reason) => this.onQemuExit(qemu, reason))
    this.writeStatus()
    return qemu
  }

  private onQemuExit(qemu: QemuProcess, reason: string): void {
    if (qemu !== this.qemu) return
    this.link.detach(reason)
    this.writeStatus()
    // Booting, restoring: the operation under way sees it through withinDeadline and decides.
    if (this.lifecycle.qemuExitIsAwaited || this.lifecycle.goingDown) return
    this.end({ event: 'exited', reason, consoleTail: this.console.lastLines() })
    void this.shutdown(reason)
  }

  /** Records how the VM ended (once: the first cause is the one clients hear) and tells them. */
  private end(event: ControlEvent): void {
    if (this.lifecycle.end(event)) this.control.broadcast(event)
  }

  private async onRequest(
    request: ControlRequest,
    client: ControlClient,
    reply: (message: unknown) => void,
  ): Promise<void> {
    switch (request.op) {
      case 'attach': {
        client.attached = true
        if (request.lease) this.control.lease(client)
        reply({ reply: 'attach', status: this.status() })
        const outcome = this.lifecycle.outcome
        if (outcome) reply(outcome)
        else if (publicState(this.lifecycle.state) === 'ready')
          reply({ event: 'ready', status: this.status() })
        return
      }
      case 'status':
        reply({ reply: 'status', status: this.status() })
        return
      case 'destroy':
        await this.shutdown('destroyed on request', () => reply({ reply: 'destroy', ok: true }))
        return
      case 'snapshot':
      case 'restore': {
        const { op, name } = request
        try {
          await this.snapshots.enqueue(() => (op === 'snapshot' ? this.snapshot(name) : this.rollback(name)))
          reply({ reply: op, ok: true })
        } catch (error) {
          this.log('%s %s failed: %s', op, name, (error as Error).message)
          reply({ reply: op, ok: false, error: (error as Error).message })
        }
        return
      }
      default:
        reply({ reply: 'error', message: `unknown op ${(request as { op: string }).op}` })
    }
  }

  private assertReady(): void {
    if (!this.lifecycle.is('ready'))
      throw new Error(`the VM is ${publicState(this.lifecycle.state)}, not ready`)
  }

  private async snapshot(name: string): Promise<void> {
    this.snapshots.file(name, false)
    this.assertReady()
    this.lifecycle.to('snapshotting')
    try {
      await this.snapshots.save(name)
    } finally {
      if (this.lifecycle.is('snapshotting')) this.lifecycle.to('ready')
    }
  }

  private async rollback(name: string): Promise<void> {
    this.snapshots.file(name, true)
    this.assertReady()
    this.lifecycle.to('restoring')
    try {
      const qemu = await this.snapshots.rollback(name)
      this.link.watchPort(await qemu.connectQmp())
    } catch (error) {
      // A VM that cannot come back is gone: say so to every client, as if QEMU had died.
      const reason = `restoring snapshot ${name} failed: ${(error as Error).message}`
      this.end({ event: 'exited', reason, consoleTail: this.console.lastLines() })
      void this.shutdown(reason)
      throw error
    }
    if (this.lifecycle.is('restoring')) this.lifecycle.to('ready')
  }

  private status(): VmStatus {
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
    }
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
    this.lifecycle.to('stopping')
    this.proxy.refuse()
    this.teardown = (async () => {
      const qemu = this.qemu
      const how = await qemu?.quit(QUIT_GRACE_MS)
      if (how) this.log('QEMU stopped by %s', how)
      await qemu?.exited
      this.health?.close()
      this.link.close(reason)
      this.end({ event: 'exited', reason, consoleTail: '' })
      this.lifecycle.to('exited')
      this.proxy.close()
      this.console.close()
      this.dir.remove()
      beforeClose?.()
      // Let the last events and replies flush, then go.
      setTimeout(() => process.exit(0), 100).unref()
      this.control.close()
    })()
    return this.teardown
  }
}
