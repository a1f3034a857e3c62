import { existsSync } from 'node:fs'
import { VmNotFoundError } from '../errors.js'
import { mark } from '../supervisor/restore-timeline.js'
import { SupervisorClient } from '../supervisor/supervisor-client.js'
import { isAlive, VmDirectory } from '../supervisor/vm-directory.js'
import { pollUntil, sleep } from '../util/timing.js'

/** How long a supervisor gets to stop its QEMU and clean up before it is killed instead. */
const DESTROY_TIMEOUT_MS = 15_000

/**
 * Destroys the VM called `name` whatever state it is in (booting, ready, stuck): asks its
 * supervisor, and if that does not answer, kills the supervisor (QEMU dies with it) and removes
 * the directory.
 */
export async function destroyVm(name: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const directory = new VmDirectory(name, env)
  if (!existsSync(directory.path)) throw new VmNotFoundError(name)
  let control: SupervisorClient | undefined
  try {
    control = await SupervisorClient.connect(directory.controlSocket)
  } catch {}
  await destroyThrough(control, directory)
  control?.close()
}

/**
 * The one way a VM is destroyed (`VM.destroy()`, `vmctl down`, `destroyVm`): ask its supervisor over
 * `control`, which stops QEMU and removes the directory before it answers (with `handOff`: answers
 * once that has begun, and finishes alone); a supervisor that does not answer within
 * DESTROY_TIMEOUT_MS, or none at all, is killed and the directory removed here.
 */
export async function destroyThrough(
  control: SupervisorClient | undefined,
  directory: VmDirectory,
  handOff = false,
): Promise<void> {
  if (control && !control.isClosed) {
    mark(directory.name, 'caller: destroy requested')
    const stop = new AbortController()
    const reply = await Promise.race([
      control.request({ op: 'destroy', handOff }),
      sleep(DESTROY_TIMEOUT_MS, stop.signal).then(
        () => undefined,
        () => undefined,
      ),
    ])
    stop.abort()
    mark(directory.name, 'caller: destroy answered')
    // Handed off: the supervisor said it is tearing the VM down, and finishes alone.
    if (reply?.handedOff === true) return
    if (reply && !existsSync(directory.path)) return
  } else if (!existsSync(directory.path)) return
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

/**
 * Waits for a teardown that a supervisor finishes alone (a destroy with `handOff`) to end: its
 * directory gone, as after a destroy that waited. One the supervisor does not finish in time is
 * finished here, as destroyThrough does with a supervisor that does not answer.
 */
export async function awaitTeardown(directory: VmDirectory): Promise<void> {
  if (!existsSync(directory.path)) return
  if (await pollUntil(() => !existsSync(directory.path), { timeoutMs: DESTROY_TIMEOUT_MS, everyMs: 20 }))
    return
  forceRemove(directory)
}
