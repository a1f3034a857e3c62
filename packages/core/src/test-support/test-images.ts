import {
  chmodSync,
  closeSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import type { ImageBuildOptions } from '../vm/vm-options.js'

/**
 * The image the tests build: the README's example, so a test run and the example share one cache
 * entry. Built once per machine (about 1.5-2.5 min cold, under a cross-process lock), then cached.
 */
export const TEST_IMAGE: ImageBuildOptions = { distribution: 'bookworm', packages: ['jq'] }

/**
 * A disk laid out like a cloud image that knows nothing of vmctl: an MBR partition table, a small
 * first partition (an EFI system partition's place, left empty) and the root filesystem on the
 * second, holding busybox and an os-release. No agent, no vmctl files. Raw format.
 */
export async function foreignImage(path: string, busybox: string): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'vmctl-foreign-root-'))
  try {
    for (const dir of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'run', 'root']) mkdirSync(join(root, dir))
    copyFileSync(busybox, join(root, 'bin/busybox'))
    chmodSync(join(root, 'bin/busybox'), 0o755)
    for (const applet of ['sh', 'cat', 'ls', 'echo', 'test', 'touch', 'mount', 'id', 'uname', 'sync', 'true'])
      symlinkSync('busybox', join(root, 'bin', applet))
    writeFileSync(join(root, 'etc/os-release'), 'ID=foreign\nPRETTY_NAME="A foreign image"\n')
    const MiB = 1024 * 1024
    const first = { start: 1 * MiB, size: 8 * MiB }
    const second = { start: 9 * MiB, size: 64 * MiB }
    const total = second.start + second.size
    const fd = openSync(path, 'w')
    try {
      const mbr = Buffer.alloc(512)
      const entry = (i: number, type: number, p: { start: number; size: number }) => {
        const at = 446 + i * 16
        mbr[at + 4] = type
        mbr.writeUInt32LE(p.start / 512, at + 8)
        mbr.writeUInt32LE(p.size / 512, at + 12)
      }
      entry(0, 0xef, first)
      entry(1, 0x83, second)
      mbr[510] = 0x55
      mbr[511] = 0xaa
      writeSync(fd, mbr, 0, 512, 0)
      writeSync(fd, Buffer.alloc(1), 0, 1, total - 1)
    } finally {
      closeSync(fd)
    }
    await execa('/usr/sbin/mkfs.ext4', [
      '-q',
      '-F',
      '-t',
      'ext4',
      '-E',
      `offset=${second.start},root_owner=0:0`,
      '-d',
      root,
      path,
      `${second.size / 1024}k`,
    ])
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
}
