import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { lockIn, tryLock } from '../host/cross-process-lock.js'
import { removeStaleBuilds } from '../host/stale-builds.js'
import type { LaunchSpec } from '../launch-spec.js'
import type { logger } from '../log.js'
import { rewriteSparse } from '../templates/sparse-ram.js'
import { templateKey, templateSummary } from '../templates/template-key.js'
import { noRoomForTemplate, templateRanOutOfRoom } from '../templates/template-room.js'
import {
  checkTemplate,
  DEFAULT_TEMPLATE_CACHE_MB,
  evictTemplates,
  publishTemplate,
  ramDenserThanSaved,
  removeTemplate,
  sealTemplate,
  type TemplateFiles,
  templateFiles,
  templatesDir,
  touchTemplate,
} from '../templates/template-store.js'
import { sleep } from '../util/timing.js'
import type { AgentLink } from './agent-link.js'
import { warmUpAgent } from './agent-warm-up.js'
import { BootFailure, type Deadline, isBootTimeout, withinDeadline } from './boot-deadline.js'
import type { ConsoleLog } from './console-log.js'
import { rehearseFirstCommand } from './first-command-rehearsal.js'
import { bootWatchingForHangs, startColdQemu } from './hang-retry.js'
import type { QemuProcess, QemuVariant } from './qemu-process.js'
import { AGENT_HEALTH_SERVICE, healthClient, untilHealthy, untilReady } from './readiness.js'
import { mark, watchQemu } from './restore-timeline.js'
import { loadState, saveState } from './state-transfer.js'

/**
 * A clone answers in about a second under TCG; one that has not within this bound is broken
 * (dropped and rebuilt), not slow. Generous for 8 parallel clones on 2 cores.
 */
const CLONE_TIMEOUT_MS = 60_000
/**
 * How long a parked template VM may take to go quiet before its save (guest-quiet.ts): its agent's
 * V8 finishing the optimizing compiles that the warm-up started, which every clone would finish
 * otherwise. VMCTL_TEMPLATE_SETTLE_MS=0, for measuring only, saves at once as before (the template
 * key does not say how it was saved: an A/B gives each side its own VMCTL_CACHE_DIR).
 */
const TEMPLATE_SETTLE_MAX_MS = 3_000
const settleMaxMs = () => Number(process.env.VMCTL_TEMPLATE_SETTLE_MS ?? TEMPLATE_SETTLE_MAX_MS)

/**
 * The VM mounts a root (the host's, an image's) over the place its commands run in, after a
 * restore: the same test as the kernel command line's vmctl_root (qemu-command.ts).
 */
function mountsRoot(definition: LaunchSpec): boolean {
  return definition.image !== undefined || Boolean(definition.hostRoot)
}

/** What template-clone needs from the supervisor: given, never imported (see supervisor.ts). */
export interface TemplateContext {
  /** This VM's definition as it boots (with the accelerator a KVM probe may have changed). */
  definition: LaunchSpec
  console: ConsoleLog
  link: AgentLink
  /** Where the agent's gRPC clients connect (the template maker asks the agent's health). */
  agentSocket: string
  /** Where the call lane's clients connect (the warm-up makes calls over both transports). */
  rawSocket: string
  log: ReturnType<typeof logger>
  warn: (message: string) => void
  /** Starts this VM's QEMU (refused once the VM is going down). */
  startQemu: (variant: QemuVariant) => QemuProcess
  /** The teardown started: nothing may remove, make, lock or wait for a template any more. */
  goingDown: () => boolean
}

/** A VM booted from a template: which one, and how its later QEMUs (snapshot rollbacks) start. */
export interface TemplateBoot {
  /** The cloned VM's QEMU, ready. */
  qemu: QemuProcess
  key: string
  /** This boot made the template first. */
  made: boolean
  variant: QemuVariant
}

/** A clone failed for the template's sake: its guest never came back to the agent. */
class CloneFailure extends Error {}

/** The cache's filesystem filled up while a template's RAM was written to it (template-room.ts). */
class TemplateOutOfRoom extends Error {}

/**
 * The template cache policy, the make and the clone. A template is removed only for a reason of its
 * own, named in the warning: its files fail their check (meta, size, checksum), or a clone of it
 * fails twice on a supervisor that is not going down. A clone that got as far as the guest's
 * refresh proved the template: what fails after that is this VM's failure. A template becomes
 * visible to other boots only once the VM made from it is ready; a probe boot makes none.
 */
export class TemplateClone {
  private readonly ctx: TemplateContext
  private readonly cacheDir: string
  private readonly key: string

  constructor(ctx: TemplateContext) {
    this.ctx = ctx
    this.cacheDir = ctx.definition.cacheDir
    this.key = templateKey(ctx.definition)
  }

  /**
   * Boots from the template of this VM's definition, making it first if there is none (once across
   * processes: a kernel-released lock). Undefined: boot cold (the template could not be used; a bad
   * template costs one slow boot, never a hang or a failure).
   */
  async boot(deadline: Deadline): Promise<TemplateBoot | undefined> {
    const { key, cacheDir } = this
    const waitLimit = performance.now() + (deadline.at - performance.now()) / 2
    let failedOnce: string | undefined
    for (;;) {
      this.assertNotGoingDown()
      const check = checkTemplate(cacheDir, key)
      if (check && 'problem' in check) {
        this.remove(`is unusable (${check.problem})`)
        continue
      }
      if (check) {
        if (ramDenserThanSaved(check.files)) await this.makeRamSparse(check.files)
        const variant: QemuVariant = { memoryFile: { path: check.files.ram, shared: false }, deferRoot: true }
        let qemu: QemuProcess
        try {
          qemu = await this.clone(check.files, variant, deadline)
        } catch (error) {
          if (!(error instanceof CloneFailure) || this.ctx.goingDown()) throw error
          if (!failedOnce) {
            // Once may be this host (a QEMU killed from outside, memory short): try again before
            // taking it out from under every other VM of this definition.
            failedOnce = error.message
            this.ctx.log('template %s: a clone failed (%s); trying once more', key, error.message)
            continue
          }
          this.remove(`did not restore twice (${failedOnce}; ${error.message})`)
          continue
        }
        touchTemplate(check.files)
        // From here on it is this VM's own boot (its root mount): failures are real ones.
        let rootMounted = false
        const { mux } = this.ctx.link
        const ready = untilReady(mux, qemu, deadline, this.ctx.definition.name, () => {
          rootMounted = true
        })
        if (mountsRoot(this.ctx.definition))
          rehearseFirstCommand(this.ctx, mux, () => rootMounted, { deadline, ended: ready }, this.ctx.log)
        await withinDeadline(ready, qemu, deadline)
        return { qemu, key, made: false, variant }
      }
      const release = await tryLock(lockIn(cacheDir, `vmctl-template-${key}`))
      if (!release) {
        // Another process is making it: wait for it, but a template is only a shortcut: past half
        // of this VM's boot time, boot cold rather than time out on someone else's build.
        if (performance.now() > waitLimit) {
          this.ctx.warn(`another process is still making VM template ${key}; booting without it`)
          return undefined
        }
        await sleep(100)
        continue
      }
      try {
        // Made by another process between the check and the lock: use it.
        if (checkTemplate(cacheDir, key)) continue
        const noRoom = noRoomForTemplate(cacheDir, this.ctx.definition.memoryMiB)
        if (noRoom) {
          this.ctx.warn(noRoom)
          return undefined
        }
        return await this.bootFromNew(deadline)
      } catch (error) {
        if (!(error instanceof TemplateOutOfRoom) || this.ctx.goingDown()) throw error
        this.ctx.warn(error.message)
        return undefined
      } finally {
        release()
      }
    }
  }

  private assertNotGoingDown(): void {
    if (this.ctx.goingDown()) throw new BootFailure('BOOT_FAILED', 'the VM is shutting down')
  }

  /** Removes the template for a reason of its own, with a warning that names it. */
  private remove(reason: string): void {
    this.assertNotGoingDown()
    this.ctx.warn(`the VM template ${this.key} ${reason}; rebuilding it`)
    removeTemplate(this.cacheDir, this.key)
  }

  /**
   * Makes the template (under its lock), boots this VM from it, and publishes it once this VM is
   * ready. A fresh template that does not clone costs a cold boot; any other failure is this
   * VM's, and the template goes with it.
   */
  private async bootFromNew(deadline: Deadline): Promise<TemplateBoot | undefined> {
    const { key, cacheDir } = this
    const staging = await this.make(deadline)
    const files = templateFiles(staging)
    const variant: QemuVariant = { memoryFile: { path: files.ram, shared: false }, deferRoot: true }
    let qemu: QemuProcess
    try {
      try {
        qemu = await this.clone(files, variant, deadline)
      } catch (error) {
        if (!(error instanceof CloneFailure) || this.ctx.goingDown()) throw error
        this.ctx.warn(`a fresh VM template did not restore (${error.message}); booting without one`)
        rmSync(staging, { recursive: true, force: true })
        return undefined
      }
      await withinDeadline(untilReady(this.ctx.link.mux, qemu, deadline), qemu, deadline)
    } catch (error) {
      this.ctx.log('template %s dropped: the VM made from it did not become ready', key)
      rmSync(staging, { recursive: true, force: true })
      throw error
    }
    // QEMU keeps its mapping of the RAM file across the rename; a later rollback to a snapshot of
    // this VM starts a QEMU that maps it again, from where it now is.
    const published = publishTemplate(cacheDir, staging, key)
    this.ctx.log('template %s published: the VM made from it is ready', key)
    const maxMiB = this.ctx.definition.templateCacheMiB ?? DEFAULT_TEMPLATE_CACHE_MB
    for (const evicted of evictTemplates(cacheDir, maxMiB, key))
      this.ctx.log(
        'template cache over %d MiB: removed %s, last used %s',
        maxMiB,
        evicted.key,
        evicted.lastUsedAt,
      )
    return {
      qemu,
      key,
      made: true,
      variant: { ...variant, memoryFile: { path: published.ram, shared: false } },
    }
  }

  /**
   * Cold-boots with RAM written through to a file and saves the device state once the agent
   * answers, before the root is mounted. Returns the sealed template's staging directory (not yet
   * visible to other boots: see bootFromNew); removes it if anything fails.
   */
  private async make(deadline: Deadline): Promise<string> {
    const started = performance.now()
    const { cacheDir, key } = this
    removeStaleBuilds(templatesDir(cacheDir))
    const staging = join(templatesDir(cacheDir), `${key}.${process.pid}.staging`)
    rmSync(staging, { recursive: true, force: true })
    mkdirSync(staging, { recursive: true })
    const files = templateFiles(staging)
    let qemu: QemuProcess | undefined
    const health = healthClient(this.ctx.agentSocket)
    try {
      // A cold boot, watched for a guest that hangs on the way (hang-retry.ts); a second try starts
      // over with a new RAM file.
      const variant: QemuVariant = { memoryFile: { path: files.ram, shared: true }, deferRoot: true }
      const start = () => {
        rmSync(files.ram, { force: true })
        qemu = startColdQemu(this.ctx, variant)
        return qemu
      }
      const booting = async (booted: QemuProcess) => {
        await this.ctx.link.connect(booted)
        await untilHealthy(health, AGENT_HEALTH_SERVICE, deadline, this.ctx.log)
      }
      const booted = await bootWatchingForHangs(this.ctx, start(), start, booting, deadline)
      const within = <T>(work: Promise<T>) => withinDeadline(work, booted, deadline)
      // Saved with the setup port's host connected, so cloned VMs see no change on it.
      await within(booted.setupPort)
      this.ctx.log('%s', await within(warmUpAgent(this.ctx, deadline.at, mountsRoot(this.ctx.definition))))
      const settled = await within(saveState(booted, this.ctx.link, files.state, true, settleMaxMs()))
      if (settled) this.ctx.log('%s', settled)
      await booted.kill()
      this.ctx.link.dropPort()
      // Its boot's console goes with it: cloned VMs show it, so a failure's console tail still
      // has the kernel's and the init's lines.
      writeFileSync(join(staging, 'console.log'), this.ctx.console.recentText())
      sealTemplate(staging, {
        version: 1,
        key,
        createdAt: new Date().toISOString(),
        memoryBytes: this.ctx.definition.memoryMiB * 1024 * 1024,
        summary: templateSummary(this.ctx.definition),
      })
      this.ctx.log('template %s made in %d ms', key, Math.round(performance.now() - started))
      return staging
    } catch (error) {
      await qemu?.kill()
      rmSync(staging, { recursive: true, force: true })
      // Its RAM is a file in the cache: a page the filesystem had no room for is a SIGBUS.
      if (qemu?.killedBy === 'SIGBUS') throw new TemplateOutOfRoom(templateRanOutOfRoom(cacheDir))
      throw error
    } finally {
      health.close()
    }
  }

  /**
   * Starts a QEMU from the template's files and loads its state, within the clone's own bound. A
   * failure before the guest refreshed itself is a CloneFailure (its QEMU killed): the template's
   * problem, unless the VM's own deadline ran out or the VM is going down.
   */
  private async clone(files: TemplateFiles, variant: QemuVariant, deadline: Deadline): Promise<QemuProcess> {
    const started = performance.now()
    try {
      const boot = readFileSync(join(files.dir, 'console.log'))
      this.ctx.console.append(
        Buffer.concat([
          boot,
          Buffer.from(`\r\nvmctl: restored from template ${basename(files.dir).split('.')[0]}\r\n`),
        ]),
      )
    } catch {}
    mark(this.ctx.definition.name, 'qemu spawn')
    const qemu = this.ctx.startQemu({ ...variant, incoming: true })
    watchQemu(qemu.pid)
    // A clone that takes much longer than a cold boot would is a broken template, not a slow host.
    const at = Math.min(deadline.at, performance.now() + CLONE_TIMEOUT_MS)
    const ownBound = at < deadline.at
    const cloneDeadline: Deadline = {
      ...deadline,
      at,
      expired: () =>
        ownBound ? new CloneFailure(`no answer within ${CLONE_TIMEOUT_MS / 1000} s`) : deadline.expired(),
    }
    let synced = -1
    this.ctx.link.mux.once('ready', () => {
      synced = Math.round(performance.now() - started)
      mark(this.ctx.definition.name, 'agent session ready')
    })
    try {
      const times = await loadState(
        qemu,
        this.ctx.link,
        files.state,
        true,
        this.ctx.definition,
        cloneDeadline,
        this.ctx.log,
      )
      const since = (time: number) => Math.round(time - started)
      this.ctx.log(
        'cloned from template in %d ms (state loaded at %d, guest refreshed at %d, agent session at %d)',
        since(performance.now()),
        since(times.loaded),
        since(times.refreshed),
        synced,
      )
      return qemu
    } catch (error) {
      // The VM's own boot timeout is a boot timeout, and says nothing of the template.
      if (isBootTimeout(error) && !ownBound) throw error
      await qemu.kill()
      throw error instanceof CloneFailure ? error : new CloneFailure((error as Error).message)
    }
  }

  /**
   * Makes a template's RAM file sparse again when it was copied without its holes (a CI cache
   * restored with plain tar: 1.1 GB instead of ~190 MB, and as much in every later save), once,
   * under the template's lock; when another process holds it (making or rewriting it), or the
   * rewrite fails (a full disk), the dense file is used as it is.
   */
  private async makeRamSparse(files: TemplateFiles): Promise<void> {
    const release = await tryLock(lockIn(this.cacheDir, `vmctl-template-${this.key}`))
    if (!release) return
    try {
      if (!ramDenserThanSaved(files)) return
      const started = performance.now()
      const before = statSync(files.ram).blocks * 512
      const after = await rewriteSparse(files.ram)
      this.ctx.log(
        'template %s: RAM file made sparse again (%d MiB on disk, was %d MiB) in %d ms',
        this.key,
        Math.round(after / 2 ** 20),
        Math.round(before / 2 ** 20),
        Math.round(performance.now() - started),
      )
    } catch (error) {
      this.ctx.log('template %s: could not make its RAM file sparse: %s', this.key, (error as Error).message)
    } finally {
      release()
    }
  }
}
