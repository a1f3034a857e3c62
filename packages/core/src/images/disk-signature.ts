import { closeSync, openSync, readSync } from 'node:fs'

/**
 * What marks the start of a raw file as a disk: a partition table or a filesystem vmctl's guests
 * can boot from or mount. A raw "image" is any file to QEMU, so without this a 1 MB file of random
 * bytes boots for seconds before the guest finds no root. Reads the first 68 KiB only.
 */
const SIGNATURES: { name: string; offset: number; bytes: Buffer }[] = [
  { name: 'GPT partition table', offset: 512, bytes: Buffer.from('EFI PART') },
  { name: 'MBR partition table', offset: 510, bytes: Buffer.from([0x55, 0xaa]) },
  { name: 'ext2/3/4', offset: 1024 + 56, bytes: Buffer.from([0x53, 0xef]) },
  { name: 'XFS', offset: 0, bytes: Buffer.from('XFSB') },
  { name: 'btrfs', offset: 0x10040, bytes: Buffer.from('_BHRfS_M') },
  { name: 'squashfs', offset: 0, bytes: Buffer.from('hsqs') },
  { name: 'ISO 9660', offset: 0x8001, bytes: Buffer.from('CD001') },
  { name: 'erofs', offset: 1024, bytes: Buffer.from([0xe2, 0xe1, 0xf5, 0xe0]) },
]

const HEAD_BYTES = 0x10040 + 8

/** The name of the partition table or filesystem at the start of `path`, or undefined. */
export function diskSignature(path: string): string | undefined {
  const head = Buffer.alloc(HEAD_BYTES)
  const fd = openSync(path, 'r')
  let length: number
  try {
    length = readSync(fd, head, 0, HEAD_BYTES, 0)
  } finally {
    closeSync(fd)
  }
  return SIGNATURES.find(
    ({ offset, bytes }) =>
      offset + bytes.length <= length && head.subarray(offset, offset + bytes.length).equals(bytes),
  )?.name
}
