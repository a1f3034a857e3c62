import { closeSync, openSync, writeSync } from 'node:fs'

const TAIL_BYTES = 32 * 1024
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching terminal escapes is the point
const ANSI_ESCAPE = /\x1b\[[0-9;]*[A-Za-z]/g

/** The guest's serial console: appended to console.log, with the tail kept for error messages. */
export class ConsoleLog {
  private readonly fd: number
  private tail = ''
  /**
   * The output of the current QEMU only (reset by newRun()): a panic or fatal line of an earlier
   * one, before a start() or restart(), must not be taken for this one's.
   */
  private run = ''
  private bytes = 0
  private runBytesSeen = 0

  constructor(path: string) {
    this.fd = openSync(path, 'a', 0o600)
  }

  get byteCount(): number {
    return this.bytes
  }

  /** Bytes the current QEMU's guest wrote (reset by newRun()): its sign of life. */
  get runBytes(): number {
    return this.runBytesSeen
  }

  append(chunk: Buffer): void {
    this.bytes += chunk.length
    this.runBytesSeen += chunk.length
    try {
      writeSync(this.fd, chunk)
    } catch {}
    const text = chunk.toString('utf8')
    this.tail = (this.tail + text).slice(-TAIL_BYTES)
    this.run = (this.run + text).slice(-TAIL_BYTES)
  }

  /** A new QEMU starts: what find() and panicLine() search begins here. */
  newRun(): void {
    this.run = ''
    this.runBytesSeen = 0
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

  /** The first match of `pattern` in the current QEMU's recent console output. */
  find(pattern: RegExp): RegExpMatchArray | null {
    return this.run.match(pattern)
  }

  /** The kernel's panic line, if the current QEMU's guest panicked. */
  panicLine(): string | undefined {
    const match = this.run.match(/Kernel panic - not syncing:[^\r\n]*/)
    return match?.[0]
  }

  close(): void {
    try {
      closeSync(this.fd)
    } catch {}
  }
}
