/**
 * Newline framing for the text protocols vmctl speaks over sockets (QMP, the supervisor's control
 * socket, the guest's setup port): feed chunks as they arrive, get whole lines back (without the
 * newline); a partial last line waits for the next chunk.
 */
export class LineSplitter {
  private buffer = ''

  /** `maxPartial`: a peer that sends this much without a newline is out of step; its bytes are dropped. */
  constructor(private readonly maxPartial = Number.POSITIVE_INFINITY) {}

  push(chunk: string): string[] {
    this.buffer += chunk
    const lines = this.buffer.split('\n')
    this.buffer = lines.pop() ?? ''
    if (this.buffer.length > this.maxPartial) this.buffer = ''
    return lines
  }
}
