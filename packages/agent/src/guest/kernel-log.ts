import { readSync } from 'node:fs'
import type { LogEntry } from '../generated/vmctl/agent/v1/agent.js'

/** One /dev/kmsg record: "priority,sequence,timestamp_us,flags;message". */
export function parseKmsgRecord(record: string): LogEntry | undefined {
  const semicolon = record.indexOf(';')
  if (semicolon < 0) return undefined
  const [prefix, sequence, timestamp] = record.slice(0, semicolon).split(',')
  if (prefix === undefined || sequence === undefined || timestamp === undefined) return undefined
  const message = record
    .slice(semicolon + 1)
    .split('\n')[0]!
    .replace(/\\x([0-9a-f]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
  return { source: 'kernel', timestampUs: Number(timestamp), message, priority: Number(prefix) & 7 }
}

/** Reads every kmsg record available now from a non-blocking fd. */
export function drainKmsg(fd: number, buffer: Buffer, emit: (entry: LogEntry) => void): void {
  for (;;) {
    let n: number
    try {
      n = readSync(fd, buffer, 0, buffer.length, null)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'EAGAIN') return
      if (code === 'EPIPE') continue // records were overwritten while we read; go on
      throw error
    }
    if (n <= 0) return
    const entry = parseKmsgRecord(buffer.toString('utf8', 0, n))
    if (entry) emit(entry)
  }
}
