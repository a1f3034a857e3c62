import { closeSync, openSync, writeSync } from 'node:fs'

const TAIL_BYTES = 32 * 1024
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching terminal escapes is the point
const ANSI_ESCAPE = /\x1b\[[0-9;]*[A-Za-z]/g

/** The guest's serial console: appended to console.log, with the tail kept for error messages. */
export class ConsoleLog {
  private readonly fd: number
  private tail = ''
  private bytes = 0

  constructor(path: string) {
    this.fd = openSync(path, 'a', 0o600)
  }

  get byteCount(): number {
    return this.bytes
  }

  append(chunk: Buffer): void {
    this.bytes += chunk.length
    try {
      writeSync(this.fd, chunk)
    } catch {}
    this.tail = (this.tail + chunk.toString('utf8')).slice(-TAIL_BYTES)
  }

  /** The recent output as it came (up to 32 KB), to keep with a template. */
  recentText(): string {
    return this.tail
  }

  /** The last `lines` lines, without carriage returns and ANSI escapes. */
  lastLines(lines = 25): string {
    const clean = this.tail.replace(/\r/g, '').replace(ANSI_ESCAPE, '')
    return clean.trimEnd().split('\n').slice(-lines).join('\n')
  }

  /** The first match of `pattern` in the recent console output. */
  find(pattern: RegExp): RegExpMatchArray | null {
    return this.tail.match(pattern)
  }

  /** The kernel's panic line, if the guest panicked. */
  panicLine(): string | undefined {
    const match = this.tail.match(/Kernel panic - not syncing:[^\r\n]*/)
    return match?.[0]
  }

  close(): void {
    try {
      closeSync(this.fd)
    } catch {}
  }
}
