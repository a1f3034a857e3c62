import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import type { RefreshRequest, RefreshResponse } from '../generated/vmctl/agent/v1/agent.js'

/** The runtime disk's clone-refresh (native/clone-refresh.c), next to the agent executable. */
const CLONE_REFRESH = '/vmctl/clone-refresh'
/** The init waits for this file before mounting a deferred root (vmctl_defer_root). */
export const ROOT_GO_FILE = '/run/vmctl/go'

/**
 * Makes a VM restored from a template or snapshot its own: steps the clock to the host's, feeds the
 * host's entropy to the kernel and reseeds its RNG (clone-refresh does both: Node cannot), sets the
 * hostname, and lets the init mount a root that the template deferred.
 */
export function refreshClone(request: RefreshRequest): Promise<RefreshResponse> {
  return new Promise((resolve, reject) => {
    // The hostname and the go first: the init mounts the root while clone-refresh runs (the mount
    // needs neither the clock nor the RNG; the host waits for both before the VM is ready).
    try {
      if (request.hostname) writeFileSync('/proc/sys/kernel/hostname', request.hostname)
      writeFileSync(ROOT_GO_FILE, '')
    } catch (failure) {
      reject(failure)
      return
    }
    const child = execFile(CLONE_REFRESH, [`${request.unixTimeUs}000`], (error, stdout, stderr) => {
      if (error) reject(new Error(`clone-refresh failed: ${stderr.trim() || error.message}`))
      else resolve({ clockStepUs: Math.round(Number(stdout.trim()) / 1000) || 0 })
    })
    child.stdin?.end(request.entropy)
  })
}
