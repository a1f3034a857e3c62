import { constants as osConstants } from 'node:os'
import { type ServerUnaryCall, type sendUnaryData, status } from '@grpc/grpc-js'
import type { SignalRequest, SignalResponse } from '../generated/vmctl/agent/v1/agent.js'

/**
 * The processes Exec started that have not ended, by pid, each with the function that signals
 * its process group. The `Signal` call looks a pid up here: a signal arrives on a call of its own,
 * not behind the exec's stdin, which backpressure may hold while the process does not read it.
 * Only pids in this table can be signalled: the call is not a general `kill` of guest processes.
 */
const running = new Map<number, (signal: NodeJS.Signals) => void>()

/** Registers a started process until `forget` (its call finished). */
export function registerExecProcess(pid: number, signal: (name: NodeJS.Signals) => void): () => void {
  running.set(pid, signal)
  return () => {
    if (running.get(pid) === signal) running.delete(pid)
  }
}

/** Why `name` is not a signal the agent can send, or undefined when it is one. */
export function signalProblem(name: string): string | undefined {
  if (name in osConstants.signals) return undefined
  return `unknown signal ${JSON.stringify(name)}: give a name such as "SIGTERM" or "SIGKILL"`
}

/** The `Signal` call: one signal to a running exec's process group, by the pid `started` gave. */
export function handleSignal(
  call: ServerUnaryCall<SignalRequest, SignalResponse>,
  callback: sendUnaryData<SignalResponse>,
): void {
  const { pid, signal } = call.request
  const problem = signalProblem(signal)
  const send = running.get(pid)
  if (problem) callback({ code: status.INVALID_ARGUMENT, details: problem })
  else if (!send)
    callback({
      code: status.NOT_FOUND,
      details: `no process ${pid} started by exec is running in the guest (it has ended)`,
    })
  else {
    send(signal as NodeJS.Signals)
    callback(null, {})
  }
}
