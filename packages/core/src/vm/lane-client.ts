import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js'
import { type AgentClient, agentServiceWithFileCodecs } from '@vmctl/agent'
import type { VmDirectory } from '../supervisor/vm-directory.js'
import { CallConnection } from './call-connection.js'
import { LaneClientCall, laneError } from './lane-client-call.js'

/**
 * Which transport agent calls take: the call lane (default) or `VMCTL_AGENT_TRANSPORT=grpc`,
 * gRPC over HTTP/2 on one channel per client. Read at every call, so a benchmark can alternate
 * the two in one VM.
 */
export function agentTransport(): 'lane' | 'grpc' {
  return process.env.VMCTL_AGENT_TRANSPORT === 'grpc' ? 'grpc' : 'lane'
}

type Callback = (error: ServiceError | null, response?: unknown) => void
type CallOptions = { deadline?: Date | number }

/** grpc-js's argument forms: ([metadata], [options], [callback]), after the request if any. */
function parseArgs(args: unknown[]): { options: CallOptions; callback: Callback | undefined } {
  const callback = typeof args[args.length - 1] === 'function' ? (args.pop() as Callback) : undefined
  const options = (args.length >= 2 ? args[1] : {}) as CallOptions
  return { options: options ?? {}, callback }
}

/** A call in flight, whatever its transport: what close() ends. */
type OpenCall = { cancel(): void; once(event: 'status', listener: () => void): unknown }

/**
 * An AgentClient whose calls go over the call lane (lane-client-call.ts), all on one kept
 * connection to the supervisor (call-connection.ts): the methods vmctl calls
 * (unary, server-, client- and bidi-streaming), with grpc-js's signatures and errors. With
 * VMCTL_AGENT_TRANSPORT=grpc, and for good once an agent turned a call away without a byte (an
 * agent from before the lane, in a VM attached by name), calls go to `grpc()` instead.
 *
 * `close(reason?)` (closeAgentClient in agent-client.ts) ends the calls still open on either
 * transport: a lane call fails CANCELLED with the reason in its details, a gRPC call is cancelled.
 * Closing the connection alone left a call that waited for its greeting, or that had a connection
 * of its own (or was on gRPC), running on after its client was replaced.
 */
export function laneAgentClient(
  directory: Pick<VmDirectory, 'rawSocket'>,
  grpc: () => AgentClient,
): AgentClient {
  let laneMissing = false
  let laneSeen = false
  /**
   * An agent without the lane closes the channel of a service it does not know, unanswered: from
   * then on this client uses gRPC. Once the agent answered a lane call, an unanswered one is not
   * that (the VM or the agent died), and its error stands.
   */
  const turnedAway = (error: ServiceError | null, call: LaneClientCall): boolean => {
    if (call.received > 0) laneSeen = true
    // A socket that never connected is a supervisor gone, not an agent without the lane.
    if (laneSeen || !call.connected || error?.code !== grpcStatus.UNAVAILABLE) return false
    laneMissing = true
    return true
  }
  // Once: the getter joins the path anew at each read (2% of the caller's time per info()).
  const rawSocket = directory.rawSocket
  const connection = new CallConnection(rawSocket)
  const open = new Set<OpenCall>()
  let closedBecause: string | undefined
  const track = <T>(call: T): T => {
    const tracked = call as unknown as OpenCall
    // A call made after close() runs on a connection of its own (call-connection.ts).
    if (closedBecause !== undefined || typeof tracked?.once !== 'function') return call
    open.add(tracked)
    tracked.once('status', () => open.delete(tracked))
    return call
  }
  const end = (call: OpenCall) => {
    if (!(call instanceof LaneClientCall)) return call.cancel()
    const why = closedBecause || 'its agent client was closed before it ended'
    call.abort(laneError(grpcStatus.CANCELLED, `the call was cancelled: ${why}`))
  }
  const close = (reason?: string) => {
    closedBecause ??= reason ?? ''
    connection.close()
    for (const call of [...open]) end(call)
    open.clear()
  }
  const client: Record<string, unknown> = { close }
  // The file codecs: a pulled MiB is handed on as a view of what the socket read, not a copy.
  for (const [name, method] of Object.entries(agentServiceWithFileCodecs())) {
    const fromGrpc = (args: unknown[]) =>
      track((grpc() as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!(...args))
    client[name] = (...args: unknown[]) => {
      if (laneMissing || agentTransport() === 'grpc') return fromGrpc(args)
      const request = method.requestStream ? undefined : args[0]
      const { options, callback } = parseArgs(method.requestStream ? [...args] : args.slice(1))
      let response: unknown
      const onDone = (error: ServiceError | null, done: LaneClientCall) => {
        const away = turnedAway(error, done)
        if (method.responseStream) {
          if (!error) call.emit('end')
          else if (call.listenerCount('error') > 0) call.emit('error', error)
          return
        }
        // A unary call an old agent turned away never reached a handler: safe to make again.
        if (away && !method.requestStream) return void fromGrpc(args)
        callback?.(error, error ? undefined : response)
      }
      const call = track(new LaneClientCall(rawSocket, method, options.deadline, onDone, connection))
      if (!method.responseStream)
        call.on('data', (message) => {
          response = message
        })
      // A unary or server-streaming call starts on its one request: no end frame needed.
      if (!method.requestStream) call.write(request)
      return call
    }
  }
  return client as unknown as AgentClient
}
