import { existsSync } from 'node:fs'
import type { VmStatus } from '../supervisor/control-protocol.js'
import { SupervisorClient } from '../supervisor/supervisor-client.js'
import { VmDirectory } from '../supervisor/vm-directory.js'
import { pollUntil } from '../util/timing.js'
import type { VmParts } from './vm-connection.js'

/** Why there was nothing to attach to: no supervisor answers, or the VM is ending (or failed its boot). */
export type NotAttached = 'unreachable' | 'not-ready'

/**
 * Attaches to the running VM called `name`, waiting for it if it is still booting (`vmctl up` in
 * another shell). With `lease`, this connection keeps a non-persistent VM alive until it closes
 * (VM.upShared); without, the VM's life is not this process's business (VM.attach).
 */
export async function attachVm(
  name: string,
  options: { lease: boolean; env: Record<string, string>; allowStopped?: boolean },
): Promise<VmParts | NotAttached> {
  const directory = new VmDirectory(name)
  let control: SupervisorClient
  try {
    control = await SupervisorClient.connect(directory.controlSocket)
  } catch {
    return 'unreachable'
  }
  const ready = new Promise<VmStatus | undefined>((resolve) => {
    control.on('event', (event) => resolve(event.event === 'ready' ? event.status : undefined))
    control.on('close', () => resolve(undefined))
  })
  const reply = await control.request({ op: 'attach', lease: options.lease })
  let status = reply.status as VmStatus | undefined
  if (status?.state === 'booting') status = await ready
  // A stopped VM is attached only when asked (VM.attach: `vmctl start NAME` needs a handle on it).
  const usable = status?.state === 'ready' || (options.allowStopped === true && status?.state === 'stopped')
  if (!status || !usable) {
    control.close()
    return 'not-ready'
  }
  control.unref()
  return { status, control, directory, env: options.env }
}

/** How long a VM that is ending gets to be gone. */
const GONE_TIMEOUT_MS = 15_000

/** Waits (bounded) until the directory of a VM that is ending is gone; true if it went. */
export async function untilGone(directory: VmDirectory): Promise<boolean> {
  const gone = await pollUntil(() => !existsSync(directory.path), { timeoutMs: GONE_TIMEOUT_MS, everyMs: 50 })
  return gone === true
}
