import { openSync, readSync } from 'node:fs'

/** /proc files kept open: a positioned read from 0 regenerates one (see readProc). */
const procFiles = new Map<string, number>()
const procBuffer = Buffer.allocUnsafe(64 * 1024)

/**
 * A /proc file's text, by one pread of a descriptor kept open: readFileSync's open, fstat, reads
 * and close cost /proc/uptime 276 µs against 104 here, /proc/meminfo 375 against 245 (medians in
 * the guest under TCG). The kernel builds a seq_file's text afresh on a read at offset 0, and fills
 * the whole buffer in that one read. undefined when the file cannot be read or does not fit in
 * the buffer (a caller must not take a cut text for the whole).
 */
export function readProc(path: string): string | undefined {
  try {
    let fd = procFiles.get(path)
    if (fd === undefined) {
      fd = openSync(path, 'r')
      procFiles.set(path, fd)
    }
    const length = readSync(fd, procBuffer, 0, procBuffer.length, 0)
    if (length === procBuffer.length) return undefined
    return procBuffer.toString('latin1', 0, length)
  } catch {
    return undefined
  }
}
