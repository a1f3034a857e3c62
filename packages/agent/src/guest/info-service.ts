import { readFileSync } from 'node:fs'
import os from 'node:os'
import type { InfoResponse } from '../generated/vmctl/agent/v1/agent.js'
import type { GuestRoot } from './guest-root.js'

declare const VMCTL_AGENT_VERSION: string | undefined

/**
 * The root's os-release, once read: a file over the root's share (9p) cost more of an `info()`
 * than everything else in it, under TCG. An empty read is not kept, so a root mounted after the
 * first call (a template is saved before its root is) is read again.
 */
let osReleaseCache: { path: string; text: string } | undefined

export function guestInfo(root: GuestRoot): InfoResponse {
  const meminfo = read('/proc/meminfo')
  const kb = (field: string) =>
    Number(meminfo.match(new RegExp(`^${field}:\\s+(\\d+)`, 'm'))?.[1] ?? 0) * 1024
  const osRelease = readOsRelease(`${root.chrootPath ?? ''}/etc/os-release`)
  const addresses = Object.entries(os.networkInterfaces()).flatMap(([name, list]) =>
    (list ?? []).map((a) => ({
      interface: name,
      address: a.address,
      prefix: Number(a.cidr?.split('/')[1] ?? 0),
      family: a.family,
    })),
  )
  return {
    kernelRelease: os.release(),
    osRelease:
      osRelease.match(/^PRETTY_NAME="?([^"\n]*)"?/m)?.[1] ??
      (root.chrootPath ? '' : 'vmctl initramfs (busybox)'),
    uptimeSeconds: Number(read('/proc/uptime').split(' ')[0] ?? 0),
    // Not os.cpus(): it reads /proc/cpuinfo and each CPU's sysfs entries (a tenth of an info()
    // under TCG) to count them; sched_getaffinity is one system call.
    cpus: os.availableParallelism(),
    memoryTotalBytes: kb('MemTotal'),
    memoryAvailableBytes: kb('MemAvailable'),
    addresses,
    hostname: os.hostname(),
    agentVersion: typeof VMCTL_AGENT_VERSION === 'string' ? VMCTL_AGENT_VERSION : 'dev',
  }
}

function readOsRelease(path: string): string {
  if (osReleaseCache?.path === path) return osReleaseCache.text
  const text = read(path)
  if (text) osReleaseCache = { path, text }
  return text
}

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}
