import { execFile } from 'node:child_process'
import {
  closeSync,
  existsSync,
  type FSWatcher,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  watch,
} from 'node:fs'
import { type ServerUnaryCall, type sendUnaryData, status } from '@grpc/grpc-js'
import type {
  DevicesServer,
  DiskMountsResponse,
  GuestDisk,
  WaitDiskGoneResponse,
  WaitDiskRequest,
} from '../generated/vmctl/agent/v1/devices.js'
import { agentLog } from './agent-log.js'
import type { GuestRoot } from './guest-root.js'

const DEFAULT_TIMEOUT_MS = 30_000
/** The initramfs lists the SCSI disk drivers here, loaded on the first hot-plugged disk only. */
const DISK_MODULES_LIST = '/etc/vmctl/modules-disks'
const BY_ID_DIR = '/dev/disk/by-id'
/**
 * Block devices in sysfs. Not /sys/block: the kernel links a disk there only after devtmpfs made its
 * node (device_add_disk), so a check woken by the node could miss it, and no later change in /dev
 * would wake another. The class link exists before the node.
 */
const BLOCK_CLASS_DIR = '/sys/class/block'
/**
 * How often a wait looks again without a change in /dev. A change the kernel makes in sysfs after
 * the node (a serial read late) wakes no watch; this bounds what such a change can cost.
 */
const RECHECK_MS = 1_000

/**
 * The guest side of hot-plugged disks. The host plugs a disk over QMP; this service answers once
 * the guest kernel has (or no longer has) a disk with the given serial. It watches /dev, where
 * devtmpfs creates and removes the node as the kernel adds and removes the disk (inotify works on
 * devtmpfs), and looks the serial up in sysfs on each change, and once a second besides (see
 * RECHECK_MS). There is no udev in a vmctl guest, so the agent makes the /dev/disk/by-id link udev
 * would have made, and removes it.
 */
export function devicesService(root: GuestRoot): DevicesServer {
  return {
    waitDisk: (call, callback) => void answer(callback, () => waitDisk(call.request, root)),
    waitDiskGone: (call, callback) => void answer(callback, () => waitDiskGone(call.request)),
    prepareDiskRemoval: (call: ServerUnaryCall<WaitDiskRequest, DiskMountsResponse>, callback) =>
      void answer(callback, async () => prepareRemoval(call.request.serial, root)),
  }
}

class DeadlineError extends Error {}

async function answer<T>(callback: sendUnaryData<T>, work: () => Promise<T>): Promise<void> {
  try {
    callback(null, await work())
  } catch (error) {
    const code = error instanceof DeadlineError ? status.DEADLINE_EXCEEDED : status.INTERNAL
    callback({ code, details: (error as Error).message, name: 'Error', message: (error as Error).message })
  }
}

async function waitDisk(request: WaitDiskRequest, root: GuestRoot): Promise<GuestDisk> {
  const timeoutMs = request.timeoutMs || DEFAULT_TIMEOUT_MS
  // The bound covers loading the drivers too: it is the caller's whole wait.
  const deadline = Date.now() + timeoutMs
  await loadDiskModules(root)
  const name = await watchDev(
    Math.max(0, deadline - Date.now()),
    () => findDisk(request.serial),
    `the guest kernel did not see a disk with serial ${request.serial} within ${timeoutMs} ms`,
  )
  const byId = `${BY_ID_DIR}/${byIdName(name, request.serial)}`
  try {
    mkdirSync(BY_ID_DIR, { recursive: true })
    rmSync(byId, { force: true })
    symlinkSync(`../../${name}`, byId)
  } catch (error) {
    agentLog.write(`cannot link ${byId}: ${(error as Error).message}`)
  }
  return {
    name,
    devicePath: `/dev/${name}`,
    byIdPath: byId,
    readOnly: read(`${BLOCK_CLASS_DIR}/${name}/ro`).trim() === '1',
    sizeBytes: Number(read(`${BLOCK_CLASS_DIR}/${name}/size`).trim() || 0) * 512,
  }
}

async function waitDiskGone(request: WaitDiskRequest): Promise<WaitDiskGoneResponse> {
  const timeoutMs = request.timeoutMs || DEFAULT_TIMEOUT_MS
  const name = findDisk(request.serial)
  if (name) {
    await watchDev(
      timeoutMs,
      () => (existsSync(`/dev/${name}`) || findDisk(request.serial) ? undefined : name),
      `the guest kernel still had the disk with serial ${request.serial} (${name}) after ${timeoutMs} ms`,
    )
  }
  for (const link of safeReaddir(BY_ID_DIR))
    if (link.endsWith(`_${request.serial}`) || link === `virtio-${request.serial}`)
      rmSync(`${BY_ID_DIR}/${link}`, { force: true })
  return {}
}

/**
 * Resolves with `check()`'s value as soon as it has one: checked once the watch is set (so a
 * change between the check and the watch cannot be missed), then on every change in /dev and every
 * RECHECK_MS.
 */
function watchDev(
  timeoutMs: number,
  check: () => string | undefined,
  timeoutMessage: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let watcher: FSWatcher | undefined
    const timer = setTimeout(() => {
      finish()
      reject(new DeadlineError(timeoutMessage))
    }, timeoutMs)
    const recheck = setInterval(() => poke(), RECHECK_MS)
    const finish = () => {
      clearTimeout(timer)
      clearInterval(recheck)
      watcher?.close()
    }
    const poke = () => {
      const found = check()
      if (found === undefined) return
      finish()
      resolve(found)
    }
    try {
      watcher = watch('/dev', poke)
      watcher.on('error', () => {})
    } catch (error) {
      finish()
      reject(error)
      return
    }
    poke()
  })
}

/** The kernel name of the disk whose serial is `serial` (SCSI: VPD page 0x80; virtio-blk: serial). */
export function findDisk(serial: string): string | undefined {
  for (const name of safeReaddir(BLOCK_CLASS_DIR)) {
    if (diskSerial(name) === serial && existsSync(`/dev/${name}`)) return name
  }
  return undefined
}

function diskSerial(name: string): string | undefined {
  if (name.startsWith('vd')) return read(`${BLOCK_CLASS_DIR}/${name}/serial`).trim()
  try {
    const page = readFileSync(`${BLOCK_CLASS_DIR}/${name}/device/vpd_pg80`)
    const length = page.readUInt16BE(2)
    return page
      .subarray(4, 4 + length)
      .toString('latin1')
      .trim()
  } catch {
    return undefined
  }
}

/** udev's names (60-persistent-storage.rules) for QEMU's disks. */
function byIdName(name: string, serial: string): string {
  return name.startsWith('vd') ? `virtio-${serial}` : `scsi-0QEMU_QEMU_HARDDISK_${serial}`
}

function prepareRemoval(serial: string, root: GuestRoot): DiskMountsResponse {
  const name = findDisk(serial)
  if (!name) return { mountPoints: [] }
  const mountPoints = diskMounts(name, root)
  if (mountPoints.length === 0) {
    // Writes to the bare device sit in its page cache until flushed; an unplug would drop them.
    const fd = openSync(`/dev/${name}`, 'r')
    try {
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
  }
  return { mountPoints }
}

function diskMounts(name: string, root: GuestRoot): string[] {
  const devices = new Set([
    `/dev/${name}`,
    ...safeReaddir(`${BLOCK_CLASS_DIR}/${name}`)
      .filter((p) => p.startsWith(name))
      .map((p) => `/dev/${p}`),
  ])
  const prefix = root.chrootPath ?? ''
  return read('/proc/self/mounts')
    .split('\n')
    .map((line) => line.split(' '))
    .filter((fields) => devices.has(fields[0] ?? ''))
    .map((fields) => {
      const point = (fields[1] ?? '').replace(/\\040/g, ' ')
      return prefix && point.startsWith(prefix) ? point.slice(prefix.length) || '/' : point
    })
}

let modulesLoaded: Promise<void> | undefined

/**
 * virtio_scsi and sd_mod with their dependencies, in order, once per agent process, if they are
 * not loaded yet. vmctl's init loads them at boot; this covers a guest whose init did not (a module
 * that failed to load there, an older initramfs).
 */
function loadDiskModules(root: GuestRoot): Promise<void> {
  modulesLoaded ??= (async () => {
    if (existsSync('/sys/module/sd_mod') && existsSync('/sys/module/virtio_scsi')) return
    const modules = read(DISK_MODULES_LIST).split('\n').filter(Boolean)
    for (const module of modules) {
      const name = (module.split('/').pop() ?? '').replace(/\.ko.*$/, '').replace(/-/g, '_')
      if (existsSync(`/sys/module/${name}`)) continue
      await new Promise<void>((resolve) =>
        execFile(root.busybox, ['insmod', `/lib/modules/${module}`], (error, _stdout, stderr) => {
          if (error && !/exists/i.test(stderr))
            agentLog.write(`insmod ${module}: ${stderr.trim() || error.message}`)
          resolve()
        }),
      )
    }
  })()
  return modulesLoaded
}

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}

function safeReaddir(path: string): string[] {
  try {
    return readdirSync(path)
  } catch {
    return []
  }
}
