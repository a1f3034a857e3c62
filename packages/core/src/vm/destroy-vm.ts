import { existsSync } from 'node:fs'
import { VmNotFoundError } from '../errors.js'
import { SupervisorClient } from '../supervisor/supervisor-client.js'
import { isAlive, VmDirectory } from '../supervisor/vm-directory.js'

const DESTROY_TIMEOUT_MS = 15_000

/**
 * Destroys the VM called `name` whatever state it is in (booting, ready, stuck): asks its
 * supervisor, and if that does not answer, kills the supervisor (QEMU dies with it) and removes
 * the directory.
 */
export async function destroyVm(name: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const directory = new VmDirectory(name, env)
  if (!existsSync(directory.path)) throw new VmNotFoundError(name)
  let answered = false
  try {
    const control = await SupervisorClient.connect(directory.controlSocket)
    answered = await Promise.race([
      control.request({ op: 'destroy' }).then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), DESTROY_TIMEOUT_MS).unref()),
    ])
    control.close()
  } catch {}
  if (answered && !existsSync(directory.path)) return
  forceRemove(directory)
}

/** Kills a VM's supervisor (its QEMU dies with it, through PDEATHSIG) and removes its directory. */
export function forceRemove(directory: VmDirectory): void {
  const pid = directory.readStatus()?.pid
  try {
    if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL')
  } catch {}
  directory.remove()
}
