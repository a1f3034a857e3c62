/**
 * Newline framing for the text protocols vmctl speaks over sockets (QMP, the supervisor's control
 * socket, the network switch, the shared-VM keeper, the guest's setup port): feed chunks as they arrive, get whole lines back (without the
 * newline); a partial last line waits for the next chunk.
 */
export class LineSplitter {
  private buffer = ''

  /** `maxPartial`: a peer that sends this much without a newline is out of step; its bytes are dropped. */
  constructor(private readonly maxPartial = Number.POSITIVE_INFINITY) {}

  push(chunk: string): string[] {
    if (!chunk.includes('\n')) {
      // Only the new chunk is searched: a long line arriving in many chunks stays linear.
      this.buffer += chunk
      if (this.buffer.length > this.maxPartial) this.buffer = ''
      return []
    }
    this.buffer += chunk
    const lines = this.buffer.split('\n')
    this.buffer = lines.pop() ?? ''
    if (this.buffer.length > this.maxPartial) this.buffer = ''
    return lines
  }
}

/** One message of an NDJSON protocol (the control socket, the switch, the keeper): JSON and a newline. */
export function encodeMessage(message: unknown): string {
  return `${JSON.stringify(message)}\n`
}

/**
 * Splits a stream of NDJSON into messages. Blank lines and lines that are not JSON are dropped:
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
        messages.push(JSON.parse(line))
      } catch {}
    }
    return messages
  }
}
