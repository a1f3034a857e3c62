import { spawn } from 'node:child_process'
import { Duplex } from 'node:stream'

/**
 * The agent's end of the vsock transport: `vsock-bridge listen PORT` (native/vsock-bridge.c)
 * accepts the host's connections and carries their bytes over its stdin and stdout, because Node
 * has no AF_VSOCK sockets. To the agent it looks like a virtio-serial port: one byte stream that
 * outlives host connections, resynchronised by the mux handshake on each new one. The bridge exits
 * with the agent (its stdin closes); `onExit` reports a bridge that died on its own.
 */
export function openVsockTransport(
  bridge: string,
  port: number,
  log: (message: string) => void,
  onExit: (reason: string) => void,
): Duplex {
  const child = spawn(bridge, ['listen', String(port)], { stdio: ['pipe', 'pipe', 'pipe'] })
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (text: string) => log(text.trimEnd()))
  child.once('error', (error) => onExit(`cannot start ${bridge}: ${error.message}`))
  child.once('exit', (code, signal) => onExit(`vsock-bridge exited (${signal ?? `status ${code}`})`))
  return Duplex.from({ readable: child.stdout, writable: child.stdin })
}

/** Parses the `vmctl_agent` kernel parameter: "vsock:PORT" or undefined for virtio-serial. */
export function vsockPortFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const match = /^vsock:(\d+)$/.exec(env.vmctl_agent ?? '')
  return match ? Number(match[1]) : undefined
}
