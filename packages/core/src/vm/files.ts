import { constants as bufferConstants } from 'node:buffer'
import { createReadStream, createWriteStream, mkdirSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { PassThrough, type Readable, type Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Metadata, type ServiceError } from '@grpc/grpc-js'
import type { AgentClient, FileHeader, PullResponse } from '@vmctl/agent'
import * as tar from 'tar'
import { FileTooLargeError, InvalidOptionsError } from '../errors.js'
import type { VmConnection } from './vm-connection.js'
import type { FileOptions } from './vm-types.js'

// The file methods of VM (`import * as files`): three pushes and three pulls, which differ only in
// where the bytes come from or go; each is one pushTo or pullFrom.

const CHUNK = 256 * 1024
const TRANSFER_TIMEOUT_MS = 10 * 60_000

/** Copies a local file into the guest, atomically (temp file, then rename). */
export function push(connection: VmConnection, localPath: string, remotePath: string, options: FileOptions) {
  connection.assertUsable() // a dead VM says so before a missing local file does
  const mode = options.mode ?? statSync(localPath).mode & 0o7777
  return pushTo(
    connection,
    `push ${localPath} to ${remotePath}`,
    remotePath,
    { ...options, mode },
    false,
    () => createReadStream(localPath, { highWaterMark: CHUNK }),
  )
}

/** Writes `data` to a guest file, atomically. */
export function writeFile(
  connection: VmConnection,
  remotePath: string,
  data: string | Buffer,
  options: FileOptions,
) {
  return pushTo(connection, `write ${remotePath}`, remotePath, options, false, () => Buffer.from(data))
}

/** Copies a local directory into the guest (created, with parents, if missing), as a tar. */
export function copyDirTo(
  connection: VmConnection,
  localDir: string,
  remoteDir: string,
  options: FileOptions,
) {
  connection.assertUsable()
  if (!statSync(localDir).isDirectory()) throw new InvalidOptionsError(`${localDir} is not a directory`)
  return pushTo(
    connection,
    `copy ${localDir} to ${remoteDir}`,
    remoteDir,
    options,
    true,
    () => tar.c({ cwd: localDir, portable: false }, ['.']) as unknown as Readable,
  )
}

/**
 * A guest file's contents, as one Buffer; `as: 'a string'` for a caller that decodes it (a file
 * larger than the result can hold is refused from its size, before its bytes cross).
 */
export function pull(
  connection: VmConnection,
  remotePath: string,
  options: { timeoutMs?: number },
  as: 'a Buffer' | 'a string' = 'a Buffer',
) {
  const limit = as === 'a string' ? bufferConstants.MAX_STRING_LENGTH : bufferConstants.MAX_LENGTH
  return pullFrom(connection, `read ${remotePath}`, remotePath, false, options, async (stream, stat) => {
    if (stat.size > limit) {
      stream.destroy() // cancels the call
      throw new FileTooLargeError(connection.name, remotePath, stat.size, as, limit)
    }
    const chunks: Buffer[] = []
    for await (const chunk of stream) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks)
  })
}

/** Streams a guest file to a local path (for files too big to hold in memory). */
export function pullTo(
  connection: VmConnection,
  remotePath: string,
  localPath: string,
  options: { timeoutMs?: number },
) {
  return pullFrom(connection, `read ${remotePath}`, remotePath, false, options, async (stream) => {
    mkdirSync(dirname(localPath), { recursive: true })
    await pipeline(stream, createWriteStream(localPath))
  })
}

/** Copies a guest directory to a local one (created if missing). */
export function copyDirFrom(
  connection: VmConnection,
  remoteDir: string,
  localDir: string,
  options: { timeoutMs?: number },
) {
  return pullFrom(
    connection,
    `copy ${remoteDir} from the guest`,
    remoteDir,
    true,
    options,
    async (stream) => {
      mkdirSync(localDir, { recursive: true })
      await pipeline(stream, tar.x({ cwd: localDir }) as unknown as Writable)
    },
  )
}

/** Streams `source()` into the guest at `remotePath` (with `directory`, a tar unpacked there). */
async function pushTo(
  connection: VmConnection,
  what: string,
  remotePath: string,
  options: FileOptions,
  directory: boolean,
  source: () => Readable | Buffer,
): Promise<void> {
  connection.assertUsable()
  // Checked before the source is opened, so a bad path leaves no open file behind.
  if (!remotePath.startsWith('/'))
    throw new InvalidOptionsError(`guest paths must be absolute, got ${JSON.stringify(remotePath)}`)
  const header: FileHeader = {
    path: remotePath,
    mode: options.mode ?? 0,
    owner: options.owner ?? '',
    parents: options.parents ?? true,
    directory,
  }
  await connection.callAgent(what, () => pushStream(connection.agent, header, source(), deadline(options)))
}

/** Streams a guest file (or, with `directory`, a tar of a directory) into `sink`, once the guest found it. */
function pullFrom<T>(
  connection: VmConnection,
  what: string,
  remotePath: string,
  directory: boolean,
  options: { timeoutMs?: number },
  sink: (stream: Readable, stat: { size: number }) => Promise<T>,
): Promise<T> {
  connection.assertUsable()
  return connection.callAgent(what, async () => {
    const { stat, stream } = pullStream(connection.agent, remotePath, directory, deadline(options))
    return sink(stream, await stat)
  })
}

function deadline(options: { timeoutMs?: number }): Date {
  return new Date(Date.now() + (options.timeoutMs ?? TRANSFER_TIMEOUT_MS))
}
/** Streams `source` into the guest as one file (or, with header.directory, a tar to unpack). */
function pushStream(
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
function pullStream(agent: AgentClient, path: string, directory: boolean, deadline: Date) {
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
