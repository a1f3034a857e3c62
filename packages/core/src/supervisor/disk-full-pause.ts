import { EventEmitter } from 'node:events'
import { dirname } from 'node:path'
import type { QmpClient } from '../qemu/qmp-client.js'
import { freeMiB } from '../util/disk-full.js'

/** How much must be free on the disk file's filesystem before the paused guest is resumed. */
export const RESUME_FREE_MIB = 32

/** How often a paused VM's filesystem is checked for room. */
const ROOM_POLL_MS = 1_000

/** A VM paused because the host could not hold a write to one of its disk files. */
export interface DiskFullPaused {
  /** The disk's file (an image-mode VM's overlay, a plugged disk). */
  file: string
  /** The directory holding it: the filesystem to free space on. */
  directory: string
  /** MiB free there when QEMU paused the guest. */
  freeMiB: number | undefined
  /** When the guest was paused (ISO time). */
  since: string
}

/** QEMU's `BLOCK_IO_ERROR` event (QAPI block-core): the fields read here. */
interface BlockIoError {
  device?: string
  'node-name'?: string
  operation?: string
  action?: string
  nospace?: boolean
  reason?: string
}

/** One entry of QMP `query-block`: a block device and the image it has. */
export interface QueryBlockEntry {
  device?: string
  qdev?: string
  inserted?: { 'node-name'?: string; file?: string }
}

/**
 * The image file a `BLOCK_IO_ERROR` is about, from `query-block`: QEMU names the device's root node
 * (`node-name`) and, for a `-drive`, its id (`device`: empty for a `blockdev-add` one).
 */
export function erroredFile(
  event: { device?: string; 'node-name'?: string },
  blocks: QueryBlockEntry[],
): string | undefined {
  const node = event['node-name']
  const byNode = node ? blocks.find((block) => block.inserted?.['node-name'] === node) : undefined
  const byDevice = event.device ? blocks.find((block) => block.device === event.device) : undefined
  return (byNode ?? byDevice)?.inserted?.file
}

/**
 * A guest disk write the host's filesystem cannot hold. QEMU's default error policy for a disk
 * (`werror=enospc`) pauses the whole guest on such a write and retries it when the guest is
 * resumed; every call into the VM then waits on a paused guest until its timeout, which blames the
 * VM. This watches QEMU's `BLOCK_IO_ERROR` events for it, tells the clients at once which file and
 * filesystem ran out (`paused`; each call fails with the cause instead of waiting), checks that
 * filesystem every second, and resumes the guest once `RESUME_FREE_MIB` are free there (`resumed`),
 * with the write that failed retried and nothing lost. Any other I/O error is QEMU's to report.
 */
export class DiskFullPause extends EventEmitter<{ paused: [DiskFullPaused]; resumed: [waitedMs: number] }> {
  private current: DiskFullPaused | undefined
  private poll: NodeJS.Timeout | undefined
  private qmp: QmpClient | undefined
  /** The first no-space event is being looked into: the ones behind it add nothing. */
  private noticing = false

  constructor(private readonly log: (format: string, ...args: unknown[]) => void) {
    super()
  }

  /** Why the guest is paused for room, if it is. */
  get paused(): DiskFullPaused | undefined {
    return this.current
  }

  /** Watches a new QEMU (each boot, start and restart has its own QMP connection). */
  watch(qmp: QmpClient): void {
    if (qmp === this.qmp) return
    this.stop()
    this.qmp = qmp
    qmp.on('event', (name, data) => {
      if (name !== 'BLOCK_IO_ERROR' || qmp !== this.qmp) return
      const error = (data ?? {}) as BlockIoError
      if (!error.nospace || error.action !== 'stop') return
      void this.onNoSpace(qmp, error)
    })
    qmp.on('close', () => {
      if (qmp === this.qmp) this.stop()
    })
  }

  /** Forgets the pause and stops checking (QEMU ended, or the VM goes down). */
  stop(): void {
    clearInterval(this.poll)
    this.poll = undefined
    this.current = undefined
    this.qmp = undefined
  }

  private async onNoSpace(qmp: QmpClient, error: BlockIoError): Promise<void> {
    // Every request that failed sends one; the first names the file.
    if (this.current || this.noticing) return
    this.noticing = true
    const blocks = await qmp.execute<QueryBlockEntry[]>('query-block').catch(() => [])
    this.noticing = false
    if (qmp !== this.qmp) return
    const file = erroredFile(error, blocks) ?? `the disk ${error.device || error['node-name'] || '(unnamed)'}`
    const directory = dirname(file)
    this.current = { file, directory, freeMiB: freeMiB(directory), since: new Date().toISOString() }
    this.log(
      'guest paused by QEMU: no space for a %s to %s (%s MiB free in %s); resuming once %d MiB are free',
      error.operation ?? 'write',
      file,
      this.current.freeMiB ?? '?',
      directory,
      RESUME_FREE_MIB,
    )
    this.emit('paused', this.current)
    const pausedAt = performance.now()
    this.poll = setInterval(() => {
      const free = freeMiB(directory)
      if (free === undefined || free < RESUME_FREE_MIB || qmp !== this.qmp) return
      clearInterval(this.poll)
      this.poll = undefined
      qmp.execute('cont').then(
        () => {
          if (qmp !== this.qmp) return
          const waited = Math.round(performance.now() - pausedAt)
          this.log('guest resumed after %d ms: %d MiB free in %s', waited, free, directory)
          this.current = undefined
          this.emit('resumed', waited)
        },
        (failure: Error) => this.log('could not resume the guest: %s', failure.message),
      )
    }, ROOM_POLL_MS)
    this.poll.unref()
  }
}

/** Why a boot failed whose guest QEMU paused for a full disk, in a user's words with the fix. */
export function diskFullBootFailure(paused: DiskFullPaused): string {
  const free = paused.freeMiB === undefined ? '' : ` (${paused.freeMiB} MiB free)`
  return `no space left on the filesystem of ${paused.directory}${free} for the VM's disk ${paused.file}: QEMU paused the guest while it booted. Fix: free space there (\`vmctl gc\` removes what dead VMs left behind), or put the disk on a filesystem with room`
}
