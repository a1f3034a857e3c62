import { PassThrough, type Readable } from 'node:stream'
import { Metadata, type ServiceError } from '@grpc/grpc-js'
import type { AgentClient, FileHeader, PullResponse } from '@vmctl/agent'

const CHUNK = 256 * 1024

/** Streams `source` into the guest as one file (or, with header.directory, a tar to unpack). */
export function pushStream(
  agent: AgentClient,
  header: FileHeader,
  source: Readable | Buffer,
  deadline: Date,
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let failed = false
    const call = agent.push(
      new Metadata(),
      { deadline },
      (error: ServiceError | null, response?: { bytes: number }) => {
        if (!error) return resolve(response?.bytes ?? 0)
        // Stop reading a source nobody will take any more of, and release its file.
        failed = true
        if (!Buffer.isBuffer(source)) source.destroy()
        call.emit('drain')
        reject(error)
      },
    )
    call.write({ kind: { $case: 'header', value: header } })
    const send = async () => {
      const chunks: AsyncIterable<Buffer> | Buffer[] = Buffer.isBuffer(source)
        ? split(source)
        : (source as AsyncIterable<Buffer>)
      for await (const chunk of chunks) {
        if (failed) return
        if (
          !call.write({ kind: { $case: 'data', value: Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk) } })
        ) {
          await new Promise<void>((r) => call.once('drain', r))
        }
      }
      call.end()
    }
    send().catch((error: Error) => {
      call.cancel()
      reject(error)
    })
  })
}

/**
 * Streams a guest file (or directory as a tar) out. `stat` resolves with the guest's metadata
 * before the data flows; errors (NOT_FOUND naming the path) reject `stat` and fail the stream.
 */
export function pullStream(agent: AgentClient, path: string, directory: boolean, deadline: Date) {
  const stream = new PassThrough({ highWaterMark: 1024 * 1024 })
  // The error also rejects `stat`, which is what callers await first; do not crash without a reader.
  stream.on('error', () => {})
  const call = agent.pull({ path, directory }, new Metadata(), { deadline })
  let onStat: (stat: { size: number; mode: number; isDirectory: boolean }) => void = () => {}
  let onError: (error: Error) => void = () => {}
  const stat = new Promise<{ size: number; mode: number; isDirectory: boolean }>((resolve, reject) => {
    onStat = resolve
    onError = reject
  })
  stat.catch(() => {})
  call.on('data', (response: PullResponse) => {
    const kind = response.kind
    if (kind?.$case === 'stat') onStat(kind.value)
    else if (kind?.$case === 'data' && !stream.write(kind.value)) {
      call.pause()
      stream.once('drain', () => call.resume())
    }
  })
  call.on('end', () => stream.end())
  call.on('error', (error: Error) => {
    onError(error)
    stream.destroy(error)
  })
  stream.on('close', () => call.cancel())
  return { stat, stream: stream as Readable }
}

function split(data: Buffer): Buffer[] {
  if (data.length === 0) return []
  const chunks: Buffer[] = []
  for (let offset = 0; offset < data.length; offset += CHUNK)
    chunks.push(data.subarray(offset, offset + CHUNK))
  return chunks
}
