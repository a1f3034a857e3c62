import { randomBytes } from 'node:crypto'
import {
  closeSync,
  existsSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { InvalidOptionsError } from '../errors.js'
import { loadExeca } from '../host/lazy-execa.js'
import { qemuImgBinary } from '../images/image-file.js'
import { diskFileWriteError } from '../util/disk-full.js'
import { DiskError } from './disk-error.js'
import { type DiskManifest, disksDir, readManifest, vmsUsingDisk } from './disks-dir.js'

export type DiskFormat = 'qcow2' | 'raw'

export interface DiskCreateOptions {
  /** Where the file goes. Default: vmctl's disks directory (`vmctl disk ls`), named by `name`. */
  path?: string
  /** Its name in vmctl's disks directory (default `disk-XXXXXX`); ignored with `path`. */
  name?: string
  sizeMiB: number
  /** Default qcow2 (sparse, grows as written). */
  format?: DiskFormat
  /**
   * Keep it after this process exits. Default false for a disk in vmctl's directory: it is removed
   * by `delete()`, `await using`, this process's exit, or `vmctl gc` if the process was killed.
   * A disk made at a `path` of yours is never removed but by `delete()`.
   */
  persistent?: boolean
}

const QCOW2_MAGIC = Buffer.from('QFI\xfb', 'latin1')
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** Non-persistent disks this process made in vmctl's directory, removed when it exits. */
const ownDisks = new Set<VmDisk>()
let exitHook = false

/**
 * A disk file to plug into running VMs with `vm.attachDisk()`. Its data stays in the file: detach
 * it, attach it to this VM or another, and what the guest wrote is there.
 *
 * @example
 * ```ts
 * await using disk = await VmDisk.create({ sizeMiB: 64 })
 * const { byIdPath } = await vm.attachDisk(disk)
 * await vm.exec(`mkfs.ext4 -q ${byIdPath}`)
 * ```
 */
export class VmDisk implements AsyncDisposable {
  readonly path: string
  readonly format: DiskFormat
  /** Its name in vmctl's disks directory, if it is there. */
  readonly name: string | undefined
  private readonly removeOnExit: boolean

  private constructor(path: string, format: DiskFormat, name: string | undefined, removeOnExit: boolean) {
    this.path = path
    this.format = format
    this.name = name
    this.removeOnExit = removeOnExit
    if (removeOnExit) registerOwnDisk(this)
  }

  /** Makes a new, empty disk file (qemu-img create). */
  static async create(options: DiskCreateOptions): Promise<VmDisk> {
    const format = options.format ?? 'qcow2'
    if (format !== 'qcow2' && format !== 'raw')
      throw new InvalidOptionsError(`format must be "qcow2" or "raw", not ${JSON.stringify(format)}`)
    if (!Number.isInteger(options.sizeMiB) || options.sizeMiB < 1)
      throw new InvalidOptionsError(`sizeMiB must be a whole number of MiB ≥ 1, not ${options.sizeMiB}`)
    let name: string | undefined
    let path: string
    if (options.path) {
      path = resolve(options.path)
    } else {
      name = options.name ?? `disk-${randomBytes(3).toString('hex')}`
      if (!NAME.test(name))
        throw new InvalidOptionsError(
          `disk names are letters, digits, ".", "_" and "-", not ${JSON.stringify(name)}`,
        )
      path = join(disksDir(), `${name}.${format}`)
    }
    if (existsSync(path))
      throw new DiskError(
        'DISK_EXISTS',
        path,
        `${path} already exists. Fix: use it as it is with VmDisk.open(${JSON.stringify(path)}), or delete it first`,
      )
    // Made under a temporary name and renamed: a killed create leaves a file `vmctl gc` removes.
    const partial = `${path}.${process.pid}.partial`
    const execa = await loadExeca()
    try {
      await execa(qemuImgBinary(), ['create', '-q', '-f', format, partial, `${options.sizeMiB}M`])
      if (name) {
        const manifest: DiskManifest = {
          name,
          file: `${name}.${format}`,
          format,
          sizeMiB: options.sizeMiB,
          createdAt: new Date().toISOString(),
          creatorPid: process.pid,
          persistent: !!options.persistent,
        }
        writeFileSync(join(disksDir(), `${name}.json`), JSON.stringify(manifest))
      }
      renameSync(partial, path)
    } catch (error) {
      rmSync(partial, { force: true })
      throw diskFileWriteError(error, path)
    }
    return new VmDisk(path, format, name, !!name && !options.persistent)
  }

  /**
   * An existing disk file: a path, or the name of a disk in vmctl's directory. The format is read
   * from the file (qcow2's magic; anything else is raw) unless given.
   */
  static open(pathOrName: string, options: { format?: DiskFormat } = {}): VmDisk {
    let path = resolve(pathOrName)
    let name: string | undefined
    if (!isAbsolute(pathOrName) && !pathOrName.includes('/') && NAME.test(pathOrName) && !existsSync(path)) {
      const manifest = readManifest(join(disksDir(), `${pathOrName}.json`))
      if (manifest) {
        name = manifest.name
        path = join(disksDir(), manifest.file)
      }
    }
    let stat: ReturnType<typeof statSync>
    try {
      stat = statSync(path)
    } catch {
      throw new DiskError(
        'DISK_NOT_FOUND',
        path,
        `no disk file at ${path}. Fix: create it with VmDisk.create({ path: ${JSON.stringify(path)}, sizeMiB }) or \`vmctl disk create --path ${path} --size MiB\``,
      )
    }
    if (!stat.isFile() && !stat.isBlockDevice())
      throw new DiskError(
        'DISK_NOT_FOUND',
        path,
        `${path} is not a file: a disk is a qcow2 or raw image file`,
      )
    const sniffed = hasQcow2Magic(path) ? 'qcow2' : 'raw'
    if (!options.format && sniffed === 'raw' && /\.qcow2$/.test(path))
      throw new DiskError(
        'DISK_CORRUPT',
        path,
        `${path} is named .qcow2 but has no qcow2 header: it is corrupt (\`qemu-img check ${path}\` says more). Fix: restore it from a copy, or pass { format: 'raw' } if it really is a raw image`,
      )
    return new VmDisk(path, options.format ?? sniffed, name, false)
  }

  get sizeBytes(): number {
    return statSync(this.path).size
  }

  /** Removes the file (and its entry in vmctl's directory). Refused while a VM has it plugged in. */
  async delete(): Promise<void> {
    const users = vmsUsingDisk(this.path)
    if (users.length)
      throw new DiskError(
        'DISK_IN_USE',
        this.path,
        `${this.path} is attached to VM ${users.map((u) => u.vm).join(', ')}. Fix: detach it first (vm.detachDisk, or vmctl disk detach ${users[0]!.vm} ${this.path})`,
      )
    rmSync(this.path, { force: true })
    if (this.name) rmSync(join(disksDir(), `${this.name}.json`), { force: true })
    ownDisks.delete(this)
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.removeOnExit) await this.delete()
  }
}

function hasQcow2Magic(path: string): boolean {
  const fd = openSync(path, 'r')
  try {
    const head = Buffer.alloc(4)
    return readSync(fd, head, 0, 4, 0) === 4 && head.equals(QCOW2_MAGIC)
  } finally {
    closeSync(fd)
  }
}

function registerOwnDisk(disk: VmDisk): void {
  ownDisks.add(disk)
  if (exitHook) return
  exitHook = true
  process.once('exit', () => {
    for (const own of ownDisks) {
      try {
        // One still plugged into a VM that outlives this process is that VM's now; gc decides later.
        if (vmsUsingDisk(own.path).length) continue
        rmSync(own.path, { force: true })
        // Its manifest lies beside it; disksDir() would make the directory again on the way out.
        if (own.name) rmSync(join(dirname(own.path), `${own.name}.json`), { force: true })
      } catch {
        // An exit hook must not throw; what is left is `vmctl gc`'s to find.
      }
    }
  })
}
