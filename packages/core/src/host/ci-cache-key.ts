import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { coreVersion } from '../core-version.js'
import { locateQemu } from './qemu-locator.js'

/**
 * A key for a CI cache of vmctl's cache directory: what decides its contents but is not in the
 * user's repository. vmctl's version (agent, init, key formats), Node's (the agent is built from
 * it), QEMU's (templates are its migration streams) and the CPU model (a KVM template restores only
 * on the model that saved it). Everything inside the cache is named by content hashes, so the key
 * only has to change when reuse would be impossible, and an older cache is still a good start.
 */
export function ciCacheKey(env: NodeJS.ProcessEnv = process.env): string {
  const parts = [
    `vmctl-${coreVersion()}`,
    `node${process.versions.node}`,
    `qemu${qemuVersion(env)}`,
    `cpu-${shortHash(cpuModel())}`,
  ]
  return parts.join('-')
}

function qemuVersion(env: NodeJS.ProcessEnv): string {
  try {
    const out = execFileSync(locateQemu(env), ['--version'], { encoding: 'utf8', timeout: 10_000 })
    return /version (\d+\.\d+\.\d+)/.exec(out)?.[1] ?? shortHash(out)
  } catch {
    return 'none'
  }
}

function cpuModel(): string {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8')
    return /^model name\s*:\s*(.*)$/m.exec(info)?.[1]?.trim() ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 10)
}
