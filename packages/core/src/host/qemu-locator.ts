import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { QemuNotFoundError } from '../errors.js'

export const QEMU_BINARY = 'qemu-system-x86_64'

/** $VMCTL_QEMU, else qemu-system-x86_64 on PATH. */
export function locateQemu(env: NodeJS.ProcessEnv = process.env): string {
  if (env.VMCTL_QEMU) {
    if (isExecutable(env.VMCTL_QEMU)) return env.VMCTL_QEMU
    throw new QemuNotFoundError(`VMCTL_QEMU=${env.VMCTL_QEMU}`, env.PATH)
  }
  const found = which(QEMU_BINARY, env.PATH)
  if (!found) throw new QemuNotFoundError(QEMU_BINARY, env.PATH)
  return found
}

export function which(binary: string, path: string | undefined): string | undefined {
  for (const dir of (path ?? '').split(delimiter)) {
    if (!dir) continue
    const candidate = join(dir, binary)
    if (isExecutable(candidate)) return candidate
  }
  return undefined
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}
