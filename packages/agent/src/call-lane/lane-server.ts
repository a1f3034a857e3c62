import { status } from '@grpc/grpc-js'
import { encodeStatus, LANE_SERVICE_PREFIX } from './lane-frames.js'
import { type LaneChannel, type LaneMethod, LaneServerCall } from './lane-server-call.js'

// biome-ignore lint/suspicious/noExplicitAny: handlers are typed by their service, checked at addService
type Handler = (...args: any[]) => void

/**
 * Serves agent calls on bare multiplexer channels (lane-frames.ts) with the handlers the gRPC
 * server has: `addService` takes the same ts-proto service definition and implementation as
 * grpc-js's Server.addService, so both transports run one set of handlers.
 */
export class LaneServer {
  private readonly methods = new Map<string, { method: LaneMethod; handler: Handler }>()

  addService<T extends Record<string, LaneMethod>>(
    definition: T,
    implementation: { [K in keyof T]: unknown },
  ): void {
    for (const [name, method] of Object.entries(definition))
      this.methods.set(method.path, { method, handler: implementation[name] as Handler })
  }

  /** Takes a channel whose service line names a call; false for any other service. */
  serve(channel: LaneChannel, service: string): boolean {
    if (!service.startsWith(LANE_SERVICE_PREFIX)) return false
    const path = service.slice(LANE_SERVICE_PREFIX.length)
    const entry = this.methods.get(path)
    if (!entry) {
      channel.on('error', () => {})
      channel.resume()
      channel.write(encodeStatus(status.UNIMPLEMENTED, `the agent has no method ${path}`))
      return true
    }
    const { method, handler } = entry
    const call = new LaneServerCall(channel, method)
    const respond = (error: Parameters<LaneServerCall['respond']>[0], value?: unknown) =>
      call.respond(error, value)
    // A handler that throws (a bug, or a request it did not expect) answers its call with the
    // error, rather than leaving the caller to wait for a deadline it may not have set.
    const invoke = () => {
      try {
        if (method.responseStream) handler(call)
        else handler(call, respond)
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error)
        call.respond({ code: status.INTERNAL, details: `the agent failed on ${path}: ${message}` })
      }
    }
    if (method.requestStream) {
      invoke()
      return true
    }
    call.takeFirstMessage((request) => {
      if (call.cancelled) return
      if (request === undefined)
        return call.respond({ code: status.INTERNAL, details: 'the call sent no request' })
      call.request = request
      invoke()
    })
    return true
  }
}
