import { setTimeout as sleep } from 'node:timers/promises'
import { AgentError, InvalidOptionsError, PortWaitTimeoutError } from '../errors.js'
import type { ExecResult } from './exec-result.js'
import { ExecError } from './exec-result.js'
import * as files from './files.js'
import { formatListeningPort, type ListeningPort, parseListeningPorts } from './listening-ports.js'
import type { VmConnection } from './vm-connection.js'
import type { WaitForPortOptions } from './vm-types.js'

/** What a wait (for a port, for output) takes at most unless told: a server's start under TCG can take tens of seconds. */
const DEFAULT_TIMEOUT_MS = 60_000

/** A wait's bound: `timeoutMs`, or the default; anything but a positive number is refused. */
export function waitTimeoutMs(options: { timeoutMs?: number }): number {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  if (!(timeoutMs > 0))
    throw new InvalidOptionsError(`timeoutMs is a number of ms > 0, not ${options.timeoutMs}`)
  return timeoutMs
}
/** Between two looks at the guest's sockets (each two small file reads through the agent, ~10 ms). */
const POLL_MS = 100

/** A process whose exit ends the wait: its result, with what it last wrote. */
export interface WaitedProcess {
  exited: Promise<ExecResult>
}

/**
 * Resolves once a socket in the guest listens on TCP `port` (any address, IPv4 or IPv6, in the
 * guest's first network namespace), read from /proc/net/tcp and tcp6 through the agent: no
 * process is started in the guest to look. With `process`, a process that exits with a failure
 * first ends the wait at once with an ExecError showing its output; one that exits with 0 does not
 * (a launcher that daemonizes its server exits so).
 */
export async function waitForPort(
  connection: VmConnection,
  port: number,
  options: WaitForPortOptions,
  process?: WaitedProcess,
): Promise<void> {
  if (!Number.isInteger(port) || port < 1 || port > 65_535)
    throw new InvalidOptionsError(`waitForPort needs a TCP port from 1 to 65535, not ${port}`)
  const timeoutMs = waitTimeoutMs(options)
  const deadline = performance.now() + timeoutMs
  let failed: ExecResult | undefined
  void process?.exited.then(
    (result) => {
      if (result.failed) failed = result
    },
    () => {}, // the VM's end: the next look at its sockets fails saying so
  )
  for (;;) {
    const listening = await listeningPorts(connection)
    if (listening.some((entry) => entry.port === port)) return
    if (failed) throw new ExecError(connection.name, failed, ` before anything listened on TCP port ${port}`)
    if (performance.now() >= deadline)
      throw new PortWaitTimeoutError(connection.name, port, timeoutMs, listening.map(formatListeningPort))
    await Promise.race([
      sleep(Math.min(POLL_MS, deadline - performance.now())),
      process?.exited.catch(() => {}),
    ])
  }
}

/** The guest's listening TCP sockets (tcp6 is absent when the guest has no IPv6). */
export async function listeningPorts(connection: VmConnection): Promise<ListeningPort[]> {
  const read = (path: string) =>
    files.pull(connection, path, {}).then(
      (data) => data.toString('utf8'),
      (error) => {
        if (path.endsWith('6') && error instanceof AgentError && error.grpcCode === 'NOT_FOUND') return ''
        throw error
      },
    )
  const [tcp, tcp6] = await Promise.all([read('/proc/net/tcp'), read('/proc/net/tcp6')])
  return parseListeningPorts(tcp + tcp6)
}
