import type { Readable } from 'node:stream'

/** Longer than any service line or greeting vmctl sends ahead of a byte stream. */
const MAX_LINE_BYTES = 1024

/**
 * Reads `stream` up to its first newline and resolves with that line (utf-8, without the newline),
 * leaving the rest for whoever takes the stream next: the bytes after the newline, even those that
 * came in the same chunk, are put back in front of it. For a socket whose first line says what
 * the rest is: a service line (agent-proxy.ts), the supervisor's greeting (call-connection.ts).
 *
 * The stream is left paused, so that nothing is emitted before the next reader listens: attach it,
 * then resume() (pipe() resumes by itself).
 *
 * Resolves undefined when the stream ends, closes or fails before a newline, or when the line runs
 * past `maxBytes` (a peer that is not speaking this protocol): there is then no line to go on, and
 * the caller decides what becomes of the stream.
 */
export function takeFirstLine(stream: Readable, maxBytes = MAX_LINE_BYTES): Promise<string | undefined> {
  if (stream.readableEnded || stream.destroyed) return Promise.resolve(undefined)
  return new Promise((resolve) => {
    let head: Buffer = Buffer.alloc(0)
    const finish = (line: string | undefined) => {
      stream.off('data', onData)
      stream.off('end', noLine)
      stream.off('close', noLine)
      stream.off('error', noLine)
      resolve(line)
    }
    const noLine = () => finish(undefined)
    const onData = (chunk: Buffer) => {
      // Only the new chunk is searched: a line that comes in many pieces stays linear.
      const at = chunk.indexOf(0x0a)
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk])
      const newline = at < 0 ? -1 : head.length - chunk.length + at
      if (newline < 0 ? head.length > maxBytes : newline > maxBytes) return finish(undefined)
      if (newline < 0) return
      // Paused before the rest goes back: a flowing stream would emit it to no one.
      stream.pause()
      const rest = head.subarray(newline + 1)
      if (rest.length > 0) stream.unshift(rest)
      finish(head.subarray(0, newline).toString('utf8'))
    }
    stream.on('data', onData)
    stream.once('end', noLine)
    stream.once('close', noLine)
    stream.once('error', noLine)
  })
}
