import type { logger } from '../log.js'
import type { ControlEvent, ControlRequest, VmStatus } from './control-protocol.js'
import type { ControlClient, ControlServer } from './control-server.js'
import type { DiskRequest } from './disk-hotplug.js'
import type { LinkRequest } from './nic-links.js'
import type { ForwardRequest } from './port-forwards.js'

/** What the supervisor does for each request; how requests become calls and replies is here. */
export interface ControlHandlers {
  status(): VmStatus
  /** Events a client that attaches now must get: how the VM ended, or that it is ready. */
  catchUp(): ControlEvent[]
  destroy(replied: () => void): Promise<void>
  /** A spare VM taken (spare-park.ts): resolves once it has its new name. */
  adopt(adoption: { name: string; createdAt: string }): Promise<void>
  snapshot(name: string): Promise<void>
  rollback(name: string): Promise<void>
  stop(): Promise<Record<string, unknown>>
  start(): Promise<void>
  restart(hard: boolean): Promise<Record<string, unknown>>
  /** Plugs, unplugs or lists hot-plugged disks (disk-hotplug.ts); replies as it says. */
  disks(request: DiskRequest): Promise<Record<string, unknown>>
  /** A network NIC's link up or down (nic-links.ts); replies `{ ok, error? }`. */
  setLink(request: LinkRequest): Promise<Record<string, unknown>>
  /** Forwards a guest port from the host while the VM runs (port-forwards.ts); resolves `{ hostPort }`. */
  forwardPort(request: ForwardRequest): Promise<Record<string, unknown>>
}

/**
 * Serves the control socket's requests with `handlers`. Snapshots, rollbacks, stops, starts,
 * restarts and port forwards run one at a time (each saves, replaces, ends or changes QEMU); each replies `{ ok: true, ... }`
 * or `{ ok: false, error }` with the error's message.
 */
export function serveRequests(
  control: ControlServer,
  handlers: ControlHandlers,
  log: ReturnType<typeof logger>,
): void {
  let operations: Promise<unknown> = Promise.resolve()
  const operate = (request: ControlRequest): Promise<Record<string, unknown> | undefined> => {
    switch (request.op) {
      case 'snapshot':
        return handlers.snapshot(request.name).then(() => undefined)
      case 'restore':
        return handlers.rollback(request.name).then(() => undefined)
      case 'stop':
        return handlers.stop()
      case 'start':
        return handlers.start().then(() => undefined)
      case 'restart':
        return handlers.restart(request.hard)
      case 'forward-port':
        return handlers.forwardPort(request)
      default:
        return Promise.reject(new Error(`unknown op ${request.op}`))
    }
  }
  const answer = async (
    request: ControlRequest,
    client: ControlClient,
    reply: (message: unknown) => void,
  ): Promise<void> => {
    switch (request.op) {
      case 'attach':
        client.attached = true
        if (request.lease) control.lease(client)
        reply({ reply: 'attach', status: handlers.status() })
        for (const event of handlers.catchUp()) reply(event)
        control.noteAttached(client)
        return
      case 'status':
        reply({ reply: 'status', status: handlers.status() })
        return
      case 'adopt':
        try {
          await handlers.adopt({ name: request.name, createdAt: request.createdAt })
          if (request.lease) {
            // Its adopter gone already: nobody would ever hold the lease it came for.
            if (client.socket.destroyed) {
              void handlers.destroy(() => {})
              return
            }
            control.lease(client)
          }
          reply({ reply: 'adopt', ok: true })
        } catch (error) {
          reply({ reply: 'adopt', ok: false, error: (error as Error).message })
        }
        return
      case 'destroy':
        if (request.handOff) {
          // shutdown() has refused new agent calls and asked QEMU to quit before it first awaits.
          const teardown = handlers.destroy(() => {})
          reply({ reply: 'destroy', ok: true, handedOff: true })
          await teardown
        } else await handlers.destroy(() => reply({ reply: 'destroy', ok: true }))
        return
      case 'attach-disk':
      case 'detach-disk':
      case 'disks':
        reply(await handlers.disks(request))
        return
      case 'set-link':
        reply(await handlers.setLink(request))
        return
      case 'snapshot':
      case 'restore':
      case 'stop':
      case 'start':
      case 'restart':
      case 'forward-port': {
        const work = operations.then(() => operate(request))
        operations = work.catch(() => {})
        try {
          reply({ reply: request.op, ok: true, ...(await work) })
        } catch (error) {
          log('%s failed: %s', request.op, (error as Error).message)
          const { code } = error as { code?: unknown }
          reply({
            reply: request.op,
            ok: false,
            error: (error as Error).message,
            ...(typeof code === 'string' ? { code } : {}),
          })
        }
        return
      }
      default:
        reply({ reply: 'error', message: `unknown op ${(request as { op: string }).op}` })
    }
  }
  // A request that throws is answered and logged, not left to end the supervisor unheard; the
  // answer names its op, which is what a client waits on (supervisor-client.ts).
  control.on('request', (request, client, reply) => {
    answer(request, client, reply).catch((error: Error) => {
      log('%s failed: %s', request.op, error.message)
      reply({ reply: request.op, ok: false, error: error.message })
    })
  })
}
