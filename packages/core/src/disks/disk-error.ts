import { VmctlError } from '../errors.js'

export type DiskErrorCode =
  | 'DISK_NOT_FOUND'
  | 'DISK_EXISTS'
  | 'DISK_IN_USE'
  | 'DISK_CORRUPT'
  | 'DISK_NOT_ATTACHED'
  | 'DISK_ALREADY_ATTACHED'
  | 'DISK_MOUNTED'
  | 'DISK_TIMEOUT'
  | 'DISK_ATTACH_FAILED'
  | 'VM_NOT_READY'

/** A disk that cannot be created, plugged or unplugged: the cause and the fix, with a stable code. */
export class DiskError extends VmctlError {
  readonly path: string
  constructor(code: DiskErrorCode, path: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
    this.path = path
  }
}
