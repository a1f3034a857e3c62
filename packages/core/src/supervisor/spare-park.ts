import { writeFileSync } from 'node:fs'
import { Metadata } from '@grpc/grpc-js'
import type { LaunchSpec } from '../launch-spec.js'
import type { logger } from '../log.js'
import { agentClient } from '../vm/agent-client.js'
import { bootDeadline } from './boot-deadline.js'
import { execToExit } from './guest-exec.js'
import type { QemuProcess } from './qemu-process.js'
import { mark } from './restore-timeline.js'
import { refreshGuest } from './state-transfer.js'
import type { VmDirectory } from './vm-directory.js'

/** What VM.up() gives the spare it takes: the VM's own name (directory and hostname) and birth. */
export interface Adoption {
  name: string
  createdAt: string
}

/** Far more than a warm-up takes on a loaded host; one that needs longer is given up. */
const WARM_UP_BUDGET_MS = 30_000
/** The refresh after an adoption: clock, entropy, hostname (milliseconds of guest work). */
const ADOPTION_REFRESH_MS = 60_000

/**
 * A spare VM's wait (LaunchSpec.spare; the caller's side is vm/spare-vm.ts). Booted ahead of its
 * creator's next VM.up(), it stays `booting` to the outside until that VM.up() adopts it:
 *
 * 1. Once ready, it runs what a test runs first (an exec of `true`, one through `sh`, an info())
 *    through the agent, so that QEMU has translated that guest code and the root's binaries are
 *    in the guest's page cache: QEMU's translation cache lives in this QEMU process, so, unlike a
 *    template's, it is kept for the VM's first command. Skipped when the adoption came first.
 * 2. Then QMP `stop`: a parked spare costs no CPU, only its RAM.
 * 3. The adoption: the VM's directory renamed to its new name (VmDirectory.moveTo), launch.json
 *    rewritten, `cont`, and the guest refreshed as a restored VM is (state-transfer.ts): its clock
 *    stepped over the pause, host entropy credited and the RNG reseeded, the new hostname set, and
 *    in the root /etc/hostname and /etc/hosts rewritten (clone-refresh.c). Then `ready`.
 */
export class SparePark {
  private request: { adoption: Adoption; applied: (error?: Error) => void } | undefined
  private wake: (() => void) | undefined
  private askedAt = 0
  /** A lone spare's wait ran out: it is ending, and takes no adoption. */
  private unused = false

  /** What `status()` says of this VM as a spare (control-protocol.ts VmStatus.spare). */
  state: 'booting' | 'parked' | undefined
  /** The name it had as a spare, once adopted. */
  formerName: string | undefined

  constructor(
    private readonly dir: VmDirectory,
    private readonly spec: LaunchSpec,
    private readonly log: ReturnType<typeof logger>,
    /** Its status changed (written to status.json). */
    private readonly changed: () => void,
    /** A lone spare (LaunchSpec.spareIdleMs) waited in vain: the VM is to end, for this reason. */
    private readonly idle: (reason: string) => void,
  ) {
    this.state = spec.spare ? 'booting' : undefined
  }

  /**
   * An adoption asked for by the control socket's `adopt`: resolves once the VM is renamed (the
   * `ready` event follows its refresh), rejects when it cannot be (not a spare, taken already,
   * the name taken).
   */
  adopt(adoption: Adoption): Promise<void> {
    if (!this.spec.spare) return Promise.reject(new Error('this VM is not a spare'))
    if (this.request) return Promise.reject(new Error('this spare was taken already'))
    if (this.unused) return Promise.reject(new Error('this spare is ending, unused'))
    return new Promise<void>((resolve, reject) => {
      this.request = { adoption, applied: (error) => (error ? reject(error) : resolve()) }
      this.askedAt = performance.now()
      this.wake?.()
    })
  }

  /**
   * Called once the spare is ready (root mounted, agent up): warms, parks, and returns adopted,
   * with the time (performance.now()) the adoption was asked for.
   */
  async hold(qemu: QemuProcess): Promise<number> {
    const started = performance.now()
    const idleMs = this.spec.spareIdleMs
    const idle =
      idleMs === undefined
        ? undefined
        : setTimeout(() => {
            if (this.request) return
            this.unused = true
            this.idle(`a spare unused for ${Math.round(idleMs / 1000)} s`)
          }, idleMs)
    if (!this.request) this.log('spare: %s', await this.warmUp())
    let paused = false
    if (!this.request && qemu.qmp) {
      await qemu.qmp.execute('stop')
      paused = true
      this.state = 'parked'
      this.changed()
      this.log('spare: parked %d ms after ready', Math.round(performance.now() - started))
      mark(this.spec.name, 'spare: parked')
    }
    const { adoption, applied } = await this.adopted()
    clearTimeout(idle)
    const asked = this.askedAt
    mark(this.spec.name, 'spare: adoption asked')
    try {
      this.dir.moveTo(adoption.name)
    } catch (error) {
      applied(new Error(`the spare could not take the name ${adoption.name}: ${(error as Error).message}`))
      throw error // the caller lets the spare go: it shuts down with its lease
    }
    const former = this.spec.name
    this.formerName = former
    this.state = undefined
    this.spec.name = adoption.name
    this.spec.createdAt = adoption.createdAt
    delete this.spec.spare
    delete this.spec.spareIdleMs
    writeFileSync(this.dir.launchFile, JSON.stringify(this.spec, null, 2))
    this.changed() // no longer listed as a spare, for a next taker or `vmctl ps`
    applied()
    this.log('spare: adopted as %s', adoption.name)
    if (paused) await qemu.qmp?.execute('cont')
    await refreshGuest(qemu, this.spec, bootDeadline(ADOPTION_REFRESH_MS), this.log)
    mark(this.spec.name, `spare: ${former} refreshed as ${adoption.name}`)
    return asked
  }

  private adopted(): Promise<NonNullable<SparePark['request']>> {
    const request = this.request
    if (request) return Promise.resolve(request)
    return new Promise((resolve) => {
      this.wake = () => resolve(this.request!)
    })
  }

  /** The first calls of a test, through the agent as a VM handle makes them; never throws. */
  private async warmUp(): Promise<string> {
    const started = performance.now()
    const agent = agentClient(this.dir)
    const deadline = () => new Date(Date.now() + WARM_UP_BUDGET_MS)
    try {
      for (const argv of [['true'], ['sh', '-c', 'true']]) {
        if (this.request) break
        await execToExit(agent, argv, deadline())
      }
      if (!this.request)
        await new Promise<void>((resolve, reject) =>
          agent.info({}, new Metadata(), { deadline: deadline() }, (error) =>
            error ? reject(error) : resolve(),
          ),
        )
      return `warmed up in ${Math.round(performance.now() - started)} ms`
    } catch (error) {
      return `warm-up given up after ${Math.round(performance.now() - started)} ms (${(error as Error).message})`
    } finally {
      agent.close()
    }
  }
}
