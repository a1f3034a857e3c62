import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { runtimeDir } from '../paths.js'

/** PIDs of QEMU processes booting the VM called `name` (its hostname is on the kernel command line). */
export function qemuPidsOf(name: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', `qemu-system.*vmctl_hostname=${name} `], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number)
  } catch {
    return []
  }
}

export function vmDirectoryExists(name: string): boolean {
  return existsSync(join(runtimeDir(), 'vms', name))
}

/** Polls until `predicate` holds; returns how long it took, or throws after `timeoutMs`. */
export async function eventually(
  predicate: () => boolean,
  timeoutMs: number,
  what: string | (() => string),
): Promise<number> {
  const started = Date.now()
  while (!predicate()) {
    if (Date.now() - started > timeoutMs)
      throw new Error(`not within ${timeoutMs} ms: ${typeof what === 'string' ? what : what()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return Date.now() - started
}

/** Pids of processes other than this one whose environment holds `entry` ("NAME=value"). */
export function processesWithEnv(entry: string): number[] {
  const pids: number[] = []
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(entry)) pids.push(Number(pid))
    } catch {} // gone meanwhile, or not ours to read
  }
  return pids
}
