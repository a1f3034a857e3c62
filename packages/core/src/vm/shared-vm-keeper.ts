import net from 'node:net'
import { join } from 'node:path'
import { SHARED_KEEPER_ENV } from '../host/shared-keeper-client.js'
import { logger } from '../log.js'
import { holdNetwork } from '../network/network-hold.js'
import { ensureRuntimeDir } from '../paths.js'
import { SupervisorClient } from '../supervisor/supervisor-client.js'
import { VmDirectory } from '../supervisor/vm-directory.js'
import { encodeMessage, LineDecoder } from '../util/lines.js'
import { untilGone } from './attach-vm.js'

const log = logger('shared')

export { SHARED_KEEPER_ENV } from '../host/shared-keeper-client.js'

/** The handle of a running keeper. */
export interface SharedVmKeeper {
  /** The socket path; also in `process.env.VMCTL_SHARED_KEEPER` for processes started later. */
  readonly path: string
  /** Names of the shared VMs held so far. */
  readonly held: readonly string[]
  /** Names of the shared networks held so far (`VmNetwork.shared()`). */
  readonly heldNetworks: readonly string[]
  /** Ends the held leases and waits (bounded) for VMs nobody else holds to be gone. */
  close(): Promise<void>
}

/**
 * Holds shared VMs for a whole test run: call it in the runner's main process (vitest or jest
 * global setup) before workers start. Workers find it through `VMCTL_SHARED_KEEPER` and ask it to
 * take a lease on every VM they get from `VM.upShared()`. Its leases end with `close()` at the end
 * of the run, or with the runner's process if that dies first.
 */
export async function startSharedVmKeeper(): Promise<SharedVmKeeper> {
  const path = join(ensureRuntimeDir(), `keeper-${process.pid}-${Date.now().toString(36)}.sock`)
  // Promises, set before their first await: two workers asking for one name at once share one
  // lease (a check and a set across an await would take two, and keep one past close()).
  const leases = new Map<string, Promise<SupervisorClient>>()
  const networks = new Map<string, Promise<{ close(): void }>>()
  const holdVm = async (name: string): Promise<SupervisorClient> => {
    const control = await SupervisorClient.connect(new VmDirectory(name).controlSocket)
    // A request never rejects: a supervisor that closes the connection (its VM going down) answers
    // `closed`, and a lease not taken must not be cached as held (its close event has passed).
    const reply = await control.request({ op: 'attach', lease: true })
    if (reply.reply !== 'attach' || control.isClosed) {
      control.close()
      throw new Error(`its supervisor did not take the lease (${String(reply.message ?? reply.reply)})`)
    }
    control.unref()
    log('keeper holds %s', name)
    return control
  }
  const once = <T>(map: Map<string, Promise<T>>, name: string, take: () => Promise<T>): Promise<T> => {
    const existing = map.get(name)
    if (existing) return existing
    const taking = take()
    map.set(name, taking)
    taking.catch(() => {
      if (map.get(name) === taking) map.delete(name)
    })
    return taking
  }
  const server = net.createServer((socket) => {
    const decoder = new LineDecoder()
    socket.setEncoding('utf8')
    socket.on('error', () => {})
    socket.on('data', async (chunk: string) => {
      for (const message of decoder.push(chunk) as Array<{ hold?: string; network?: boolean }>) {
        if (typeof message.hold !== 'string') continue
        const name = message.hold
        try {
          if (message.network) {
            const holding: Promise<{ close(): void }> = once(networks, name, () =>
              holdNetwork(name, () => {
                if (networks.get(name) === holding) networks.delete(name)
              }),
            )
            await holding
          } else {
            const holding: Promise<SupervisorClient> = once(leases, name, async () => {
              const control = await holdVm(name)
              control.on('close', () => {
                if (leases.get(name) === holding) leases.delete(name)
              })
              return control
            })
            await holding
          }
          socket.write(encodeMessage({ held: name }))
        } catch (error) {
          socket.write(encodeMessage({ error: (error as Error).message }))
        }
      }
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => resolve())
  })
  server.unref()
  process.env[SHARED_KEEPER_ENV] = path
  return {
    path,
    get held() {
      return [...leases.keys()]
    },
    get heldNetworks() {
      return [...networks.keys()]
    },
    async close() {
      if (process.env[SHARED_KEEPER_ENV] === path) delete process.env[SHARED_KEEPER_ENV]
      await new Promise<void>((resolve) => server.close(() => resolve()))
      const names = [...leases.keys()]
      // Those still being taken are let go once taken.
      for (const control of leases.values())
        void control.then(
          (c) => c.close(),
          () => {},
        )
      leases.clear()
      // A network's switch ends once its members are gone too: nothing to wait for here.
      for (const network of networks.values())
        void network.then(
          (n) => n.close(),
          () => {},
        )
      networks.clear()
      // Another run may hold one of them too; then it stays, and we stop waiting after a while.
      await Promise.all(names.map((name) => untilGone(new VmDirectory(name))))
    },
  }
}
