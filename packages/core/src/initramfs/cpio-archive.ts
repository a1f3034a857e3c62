import { closeSync, openSync, writeSync } from 'node:fs'

/**
 * A writer for the "newc" cpio format the kernel unpacks as an initramfs. Written in Node so that
 * building an initramfs needs no cpio, no root and no host tools.
 */
export class CpioArchive {
  private readonly fd: number
  private inode = 1
  private readonly seen = new Set<string>()

  constructor(path: string) {
    this.fd = openSync(path, 'w', 0o644)
  }

  directory(path: string, mode = 0o755): void {
    this.entry(path, 0o040000 | mode, Buffer.alloc(0))
  }

  /** Adds every missing parent directory of `path`. */
  parents(path: string): void {
    const parts = path.split('/').filter(Boolean)
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/')
      if (!this.seen.has(dir)) this.directory(dir)
    }
  }

  file(path: string, data: Buffer, mode = 0o644): void {
    this.parents(path)
    this.entry(path, 0o100000 | mode, data)
  }

  symlink(path: string, target: string): void {
    this.parents(path)
    this.entry(path, 0o120000 | 0o777, Buffer.from(target))
  }

  characterDevice(path: string, major: number, minor: number, mode = 0o600): void {
    this.parents(path)
    this.entry(path, 0o020000 | mode, Buffer.alloc(0), major, minor)
  }

  has(path: string): boolean {
    return this.seen.has(normalise(path))
  }

  close(): void {
    this.entry('TRAILER!!!', 0, Buffer.alloc(0))
    closeSync(this.fd)
  }

  private entry(path: string, mode: number, data: Buffer, rdevMajor = 0, rdevMinor = 0): void {
    const name = path === 'TRAILER!!!' ? path : normalise(path)
    if (name !== 'TRAILER!!!') {
      if (this.seen.has(name)) return
      this.seen.add(name)
    }
    const nameBytes = Buffer.from(`${name}\0`)
    const fields = [
      this.inode++,
      mode,
      0, // uid
      0, // gid
      (mode & 0o170000) === 0o040000 ? 2 : 1,
      0, // mtime: fixed, so identical inputs give identical archives
      data.length,
      0,
      0,
      rdevMajor,
      rdevMinor,
      nameBytes.length,
      0,
    ]
    const header = `070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}`
    this.write(Buffer.from(header, 'latin1'))
    this.write(nameBytes)
    this.pad(110 + nameBytes.length)
    if (data.length > 0) {
      this.write(data)
      this.pad(data.length)
    }
  }

  private write(buf: Buffer): void {
    let offset = 0
    while (offset < buf.length) offset += writeSync(this.fd, buf, offset)
  }

  private pad(length: number): void {
    const rem = length % 4
    if (rem) this.write(Buffer.alloc(4 - rem))
  }
}

function normalise(path: string): string {
  return path.replace(/^\/+/, '').replace(/\/+$/, '')
}
