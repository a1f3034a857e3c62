import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import {
  chmodSync,
  chownSync,
  createWriteStream,
  mkdirSync,
  renameSync,
  rmSync,
  statfsSync,
  statSync,
} from 'node:fs'
import { posix } from 'node:path'
import type { Writable } from 'node:stream'
import {
  type ServerReadableStream,
  type ServerWritableStream,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js'
import type {
  FileHeader,
  PullRequest,
  PullResponse,
  PushRequest,
  PushResponse,
} from '../generated/vmctl/agent/v1/agent.js'
import { READ_AT_ONCE_BYTES, sendFile, sendSmallFile } from './file-send.js'
import type { GuestRoot } from './guest-root.js'
import { lookupGroup, lookupUser } from './passwd.js'
import { resolveInRoot } from './root-paths.js'

type GrpcError = { code: status; details: string }

function grpcError(code: status, details: string): GrpcError {
  return { code, details }
}

/** Maps a filesystem error on `path` to a gRPC status with a message a person can act on. */
function fsError(error: NodeJS.ErrnoException, path: string, action: string): GrpcError {
  switch (error.code) {
    case 'ENOENT':
      return grpcError(status.NOT_FOUND, `cannot ${action} ${path}: no such file or directory in the guest`)
    case 'EACCES':
    case 'EPERM':
      return grpcError(status.PERMISSION_DENIED, `cannot ${action} ${path}: permission denied`)
    case 'EISDIR':
      return grpcError(
        status.FAILED_PRECONDITION,
        `cannot ${action} ${path}: it is a directory (use the directory variant)`,
      )
    case 'ENOTDIR':
      return grpcError(status.FAILED_PRECONDITION, `cannot ${action} ${path}: a parent is not a directory`)
    case 'EROFS':
      return grpcError(
        status.FAILED_PRECONDITION,
        `cannot ${action} ${path}: it is on a read-only file system in the guest (a read-only mount). Fix: write it elsewhere, or mount that directory writable`,
      )
    case 'ENOSPC':
      return grpcError(
        status.RESOURCE_EXHAUSTED,
        `cannot ${action} ${path}: no space left in the guest (the overlay lives in guest RAM)`,
      )
    default:
      // Node's message ends with the path it used, which for a push is the agent's temp file.
      return grpcError(
        status.INTERNAL,
        `cannot ${action} ${path}: ${error.message.replace(/, \w+ '.*'$/, '')}`,
      )
  }
}

function ownerIds(root: GuestRoot, owner: string): { uid: number; gid: number } {
  const [user, group] = owner.split(':')
  const etc = `${root.chrootPath ?? ''}/etc`
  const entry = lookupUser(etc, user!)
  if (!entry)
    throw grpcError(status.INVALID_ARGUMENT, `no user ${JSON.stringify(user)} in the guest's /etc/passwd`)
  const gid = group ? lookupGroup(etc, group) : entry.gid
  if (gid === undefined)
    throw grpcError(status.INVALID_ARGUMENT, `no group ${JSON.stringify(group)} in the guest's /etc/group`)
  return { uid: entry.uid, gid }
}

export function handlePush(
  call: ServerReadableStream<PushRequest, PushResponse>,
  callback: sendUnaryData<PushResponse>,
  root: GuestRoot,
): void {
  let header: FileHeader | undefined
  let sink: Writable | undefined
  let finish: (() => Promise<void>) | undefined
  let abort: (() => void) | undefined
  let bytes = 0
  let failed = false
  const fail = (error: GrpcError) => {
    if (failed) return
    failed = true
    abort?.()
    callback(error)
  }

  call.on('data', (request: PushRequest) => {
    if (failed) return
    const kind = request.kind
    if (kind?.$case === 'header') {
      if (header) return fail(grpcError(status.INVALID_ARGUMENT, 'push sent two headers'))
      header = kind.value
      try {
        const opened = header.directory ? openDirectorySink(header, root) : openFileSink(header, root)
        sink = opened.sink
        finish = opened.finish
        abort = opened.abort
        sink.on('error', (error: NodeJS.ErrnoException) => fail(fsError(error, header!.path, 'write')))
      } catch (error) {
        fail(
          'code' in (error as object) && typeof (error as GrpcError).code === 'number'
            ? (error as GrpcError)
            : fsError(error as NodeJS.ErrnoException, header.path, 'write'),
        )
      }
    } else if (kind?.$case === 'data') {
      if (!sink) return fail(grpcError(status.INVALID_ARGUMENT, 'push sent data before its header'))
      bytes += kind.value.length
      if (!sink.write(kind.value)) {
        call.pause()
        sink.once('drain', () => call.resume())
      }
    }
  })
  call.on('end', () => {
    if (failed) return
    if (!sink || !finish) return fail(grpcError(status.INVALID_ARGUMENT, 'push ended without a header'))
    finish().then(
      () => {
        if (!failed) callback(null, { bytes })
      },
      (error: unknown) =>
        fail(isGrpcError(error) ? error : fsError(error as NodeJS.ErrnoException, header!.path, 'write')),
    )
  })
  call.on('cancelled', () => {
    failed = true
    abort?.()
  })
}

function isGrpcError(error: unknown): error is GrpcError {
  return typeof (error as GrpcError)?.code === 'number' && typeof (error as GrpcError).details === 'string'
}

function openFileSink(header: FileHeader, root: GuestRoot) {
  const target = resolveInRoot(root.chrootPath, header.path)
  const dir = posix.dirname(target)
  if (header.parents) mkdirSync(dir, { recursive: true, mode: 0o755 })
  else if (!safeStat(dir)?.isDirectory()) {
    throw grpcError(
      status.NOT_FOUND,
      `cannot write ${header.path}: its directory ${posix.dirname(header.path)} does not exist in the guest (pass parents: true)`,
    )
  }
  const existing = safeStat(target)
  if (existing?.isDirectory()) {
    throw grpcError(
      status.FAILED_PRECONDITION,
      `cannot write ${header.path}: it is a directory (push a directory with copyDirTo)`,
    )
  }
  const special = pseudoFilesystem(dir)
  if (special || (existing && !existing.isFile())) {
    // A push writes a new file beside the target and renames it over: neither works on these.
    throw grpcError(
      status.FAILED_PRECONDITION,
      `cannot write ${header.path}: it is not a regular file (${special ? `${posix.dirname(header.path)} is on ${special}, a kernel interface` : 'a device, pipe or socket'}). Fix: write it from a command, e.g. vm.exec('echo VALUE > ${header.path}')`,
    )
  }
  const owner = header.owner ? ownerIds(root, header.owner) : undefined
  // Written beside the target and renamed over it: readers see the old file or the whole new one.
  const temp = `${dir}/.vmctl-push-${randomBytes(6).toString('hex')}`
  const sink = createWriteStream(temp, { mode: 0o600, highWaterMark: 1024 * 1024 })
  const finish = () =>
    new Promise<void>((resolve, reject) => {
      sink.end((error?: Error | null) => {
        if (error) {
          rmSync(temp, { force: true })
          reject(error)
          return
        }
        try {
          chmodSync(temp, header.mode || 0o644)
          if (owner) chownSync(temp, owner.uid, owner.gid)
          renameSync(temp, target)
          resolve()
        } catch (error) {
          rmSync(temp, { force: true })
          reject(error)
        }
      })
    })
  const abort = () => {
    sink.destroy()
    rmSync(temp, { force: true })
  }
  return { sink, finish, abort }
}

function openDirectorySink(header: FileHeader, root: GuestRoot) {
  const target = resolveInRoot(root.chrootPath, header.path)
  if (header.parents) mkdirSync(target, { recursive: true, mode: header.mode || 0o755 })
  else {
    const parent = safeStat(posix.dirname(target))
    if (!parent?.isDirectory()) {
      throw grpcError(
        status.NOT_FOUND,
        `cannot create ${header.path}: its parent does not exist in the guest (pass parents: true)`,
      )
    }
    mkdirSync(target, { recursive: true, mode: header.mode || 0o755 })
  }
  const owner = header.owner ? ownerIds(root, header.owner) : undefined
  const tar = spawn(root.busybox, ['tar', '-x', '-f', '-', '-C', target], {
    stdio: ['pipe', 'ignore', 'pipe'],
  })
  let stderr = ''
  tar.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk
  })
  const exited = new Promise<number | null>((resolve) => tar.on('close', (code) => resolve(code)))
  const finish = async () => {
    tar.stdin!.end()
    const code = await exited
    if (code !== 0)
      throw grpcError(
        status.INVALID_ARGUMENT,
        `cannot unpack into ${header.path}: ${stderr.trim() || `tar exited ${code}`}`,
      )
    if (owner) {
      const chown = spawn(root.busybox, ['chown', '-R', `${owner.uid}:${owner.gid}`, target])
      await new Promise((resolve) => chown.on('close', resolve))
    }
  }
  return { sink: tar.stdin!, finish, abort: () => tar.kill('SIGKILL') }
}

export function handlePull(call: ServerWritableStream<PullRequest, PullResponse>, root: GuestRoot): void {
  const { path, directory } = call.request
  let target: string
  let size: number
  let regular: boolean
  try {
    target = resolveInRoot(root.chrootPath, path)
    const stat = statSync(target)
    size = stat.size
    regular = stat.isFile()
    if (stat.isDirectory() !== directory) {
      call.emit(
        'error',
        grpcError(
          status.FAILED_PRECONDITION,
          stat.isDirectory()
            ? `${path} is a directory in the guest: pull it with copyDirFrom`
            : `${path} is not a directory in the guest`,
        ),
      )
      return
    }
    call.write({
      kind: {
        $case: 'stat',
        value: { size: stat.size, mode: stat.mode & 0o7777, isDirectory: stat.isDirectory() },
      },
    })
  } catch (error) {
    call.emit('error', fsError(error as NodeJS.ErrnoException, path, 'read'))
    return
  }
  if (directory) {
    const tar = spawn(root.busybox, ['tar', '-c', '-f', '-', '-C', target, '.'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    tar.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk
    })
    tar.on('close', (code) => {
      if (code === 0) call.end()
      else
        call.emit(
          'error',
          grpcError(status.INTERNAL, `cannot pack ${path}: ${stderr.trim() || `tar exited ${code}`}`),
        )
    })
    call.on('cancelled', () => tar.kill('SIGKILL'))
    tar.stdout!.on('data', (chunk: Buffer) => {
      if (!call.write({ kind: { $case: 'data', value: chunk } })) {
        tar.stdout!.pause()
        call.once('drain', () => tar.stdout!.resume())
      }
    })
  } else {
    const fail = (error: NodeJS.ErrnoException) => call.emit('error', fsError(error, path, 'read'))
    const small = regular && size > 0 && size < READ_AT_ONCE_BYTES
    if (small && sendSmallFile(call, target, size, fail, root.chrootPath !== undefined)) return
    void sendFile(call, target, size, fail)
  }
}

/** Kernel interfaces mounted as filesystems, by statfs type: their files are not files. */
const PSEUDO_FILESYSTEMS: Record<number, string> = {
  40864: 'proc',
  1650812274: 'sysfs',
  1667723888: 'cgroup2',
  2613483: 'cgroup',
  1684170528: 'debugfs',
  1953653091: 'tracefs',
  1935894131: 'securityfs',
  3405662737: 'bpf',
  7377: 'devpts',
  1650812272: 'configfs',
  3730735588: 'efivarfs',
  1634035564: 'pstore',
}

function pseudoFilesystem(dir: string): string | undefined {
  try {
    return PSEUDO_FILESYSTEMS[Number(statfsSync(dir).type) >>> 0]
  } catch {
    return undefined
  }
}

function safeStat(path: string) {
  try {
    return statSync(path)
  } catch {
    return undefined
  }
}
