/**
 * Newline framing for the text protocols vmctl speaks over sockets (QMP, the supervisor's control
 * socket, the network switch, the shared-VM keeper, the guest's setup port): feed chunks as they arrive, get whole lines back (without the
 * newline); a partial last line waits for the next chunk.
 */
export class LineSplitter {
  private buffer = ''
  /** A line went over the limit: the rest of it, up to its newline, is dropped too. */
  private discarding = false

  /**
   * `maxPartial`: a peer that sends a line longer than this is out of step; the whole line is
   * dropped (not its tail as a line of its own), and the lines after it split as before.
   */
  constructor(private readonly maxPartial = Number.POSITIVE_INFINITY) {}

  push(chunk: string): string[] {
    if (!chunk.includes('\n')) {
      if (this.discarding) return []
      // Only the new chunk is searched: a long line arriving in many chunks stays linear.
      this.buffer += chunk
      if (this.buffer.length > this.maxPartial) this.dropPartial()
      return []
    }
    const lines = (this.buffer + chunk).split('\n')
    this.buffer = lines.pop() ?? ''
    // The end of the line that went over: the buffer was empty, so it is the first.
    if (this.discarding) lines.shift()
    this.discarding = false
    if (this.buffer.length > this.maxPartial) this.dropPartial()
    return Number.isFinite(this.maxPartial) ? lines.filter((line) => line.length <= this.maxPartial) : lines
  }

  private dropPartial() {
    this.buffer = ''
    this.discarding = true
  }
}

/** One message of an NDJSON protocol (the control socket, the switch, the keeper): JSON and a newline. */
export function encodeMessage(message: unknown): string {
  return `${JSON.stringify(message)}\n`
}

/**
 * Splits a stream of NDJSON into messages. Blank lines and lines that are not a JSON object are dropped:
 * a peer's garbage must not throw inside a socket's data handler, which would end the process.
 */
export class LineDecoder {
  private readonly lines: LineSplitter

  constructor(maxPartial = Number.POSITIVE_INFINITY) {
    this.lines = new LineSplitter(maxPartial)
  }

  push(chunk: string): unknown[] {
    const messages: unknown[] = []
    for (const line of this.lines.push(chunk)) {
      if (!line.trim()) continue
      try {
        const message: unknown = JSON.parse(line)
        // Every message is an object: a bare `null` or number would throw at `message.op`.
        if (typeof message === 'object' && message !== null && !Array.isArray(message)) messages.push(message)
      } catch {}
    }
    return messages
  }
}
