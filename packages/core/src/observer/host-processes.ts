import { readdirSync, readFileSync, statSync } from 'node:fs'
import { basename, dirname } from 'node:path'
import { prestartDirs } from '../supervisor/prestarted-qemu.js'
import { vmNameOf } from '../supervisor/vm-directory.js'

/** A QEMU process of this user that belongs to a vmctl VM directory (by its QMP socket's path). */
export interface VmQemuProcess {
  pid: number
  /** Its parent: the supervisor that spawned it, or whoever adopted it once that one died. */
  ppid: number
  /** The VM directory's name (the VM's name). */
  vm: string
  /**
   * Where its sockets are when a spare supervisor started it before its VM existed
   * (supervisor/prestarted-qemu.ts): `vm` is then the name reserved for that VM, from its command.
   */
  spareDir?: string
}

/**
 * QEMU processes of this user whose `-qmp unix:DIR/qmp.sock` names a directory under `vmsDir`, or
 * under the runtime directory's `spare-qemu/` (a spare supervisor's, which a VM may have taken):
 * what vmctl started, and what someone started by hand in its place. /proc is read, not `ps`.
 */
export function vmQemuProcesses(vmsDir: string): VmQemuProcess[] {
  const spares = prestartDirs(dirname(vmsDir))
  const uid = process.getuid?.()
  const found: VmQemuProcess[] = []
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid) || pid <= 0) continue
    try {
      if (uid !== undefined && statSync(`/proc/${pid}`).uid !== uid) continue
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      if (!basename(argv[0] ?? '').startsWith('qemu-system')) continue
      const socket = qmpSocketPath(argv)
      if (!socket) continue
      const dir = dirname(socket)
      if (dirname(dir) === spares) {
        const vm = reservedName(argv) ?? basename(dir)
        found.push({ pid, ppid: parentPid(pid), vm: vmNameOf(vmsDir, vm), spareDir: dir })
        continue
      }
      if (dirname(dir) !== vmsDir) continue
      // A QEMU started under a spare's name keeps that path: its VM is the name it links to.
      found.push({ pid, ppid: parentPid(pid), vm: vmNameOf(vmsDir, basename(dir)) })
    } catch {
      // Gone while we looked.
    }
  }
  return found
}

/**
 * The path of `-qmp unix:PATH,server=on,...` in QEMU's argv (QEMU doubles a comma inside a value),
 * or undefined.
 */
export function qmpSocketPath(argv: string[]): string | undefined {
  const at = argv.indexOf('-qmp')
  if (at < 0) return undefined
  const value = argv[at + 1] ?? ''
  if (!value.startsWith('unix:')) return undefined
  // Up to the first single comma: the options follow it.
  const path = value.slice('unix:'.length).match(/^((?:[^,]|,,)*)/)?.[1] ?? ''
  return path ? path.replace(/,,/g, ',') : undefined
}

/** The VM name a command carries on its kernel command line (`vmctl_hostname=`, qemu-plan.ts). */
export function reservedName(argv: string[]): string | undefined {
  const at = argv.indexOf('-append')
  return at < 0 ? undefined : argv[at + 1]?.match(/(?:^| )vmctl_hostname=(\S+)/)?.[1]
}

export function parentPid(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
  } catch {
    return 0
  }
}
