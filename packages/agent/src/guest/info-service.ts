import { readFileSync } from 'node:fs'
import os from 'node:os'
import type { InfoResponse } from '../generated/vmctl/agent/v1/agent.js'
import { guestAddresses } from './guest-addresses.js'
import type { GuestRoot } from './guest-root.js'
import { readProc } from './proc-read.js'

declare const VMCTL_AGENT_VERSION: string | undefined

/**
 * The root's os-release's PRETTY_NAME, once read: a file over the root's share (9p) cost more of
 * an `info()` than everything else in it, under TCG. An empty read is not kept, so a root mounted
 * after the first call (a template is saved before its root is) is read again.
 */
let osReleaseCache: { path: string; name: string | undefined } | undefined

/**
 * The uptime once read, and the monotonic clock then: later calls add the clock's progress
 * instead of reading /proc/uptime (a read of a tenth of guestInfo's time under TCG). The same
 * clock (BOOTTIME differs from MONOTONIC only by time suspended, which a VM's guest never is;
 * a restored snapshot resumes both alike).
 */
let uptimeBase: { seconds: number; at: bigint } | undefined

export function guestInfo(root: GuestRoot): InfoResponse {
  const meminfo = readProc('/proc/meminfo') ?? ''
  return {
    kernelRelease: os.release(),
    osRelease:
      osReleaseName(`${root.chrootPath ?? ''}/etc/os-release`) ??
      (root.chrootPath ? '' : 'vmctl initramfs (busybox)'),
    uptimeSeconds: uptime(),
    // Not os.cpus(): it reads /proc/cpuinfo and each CPU's sysfs entries (a tenth of an info()
    // under TCG) to count them; sched_getaffinity is one system call.
    cpus: os.availableParallelism(),
    memoryTotalBytes: meminfoBytes(meminfo, 'MemTotal'),
    memoryAvailableBytes: meminfoBytes(meminfo, 'MemAvailable'),
    addresses: guestAddresses(),
    hostname: os.hostname(),
    agentVersion: typeof VMCTL_AGENT_VERSION === 'string' ? VMCTL_AGENT_VERSION : 'dev',
  }
}

function osReleaseName(path: string): string | undefined {
  if (osReleaseCache?.path === path) return osReleaseCache.name
  const text = read(path)
  const name = text.match(/^PRETTY_NAME="?([^"\n]*)"?/m)?.[1]
  if (text) osReleaseCache = { path, name }
  return name
}

function uptime(): number {
  const now = process.hrtime.bigint()
  if (!uptimeBase) {
    const seconds = Number((readProc('/proc/uptime') ?? '').split(' ')[0])
    if (!Number.isFinite(seconds) || seconds <= 0) return 0
    uptimeBase = { seconds, at: now }
  }
  return uptimeBase.seconds + Number(now - uptimeBase.at) / 1e9
}

/** A /proc/meminfo field in bytes, without a regular expression built per call. */
function meminfoBytes(meminfo: string, field: string): number {
  let at = meminfo.indexOf(`${field}:`)
  while (at > 0 && meminfo[at - 1] !== '\n') at = meminfo.indexOf(`${field}:`, at + 1)
  if (at < 0) return 0
  const kb = Number.parseInt(meminfo.slice(at + field.length + 1, at + field.length + 40), 10)
  return Number.isFinite(kb) ? kb * 1024 : 0
}

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}
