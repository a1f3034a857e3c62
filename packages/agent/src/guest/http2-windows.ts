import type { Http2Server, ServerHttp2Session } from 'node:http2'
import type { Server } from '@grpc/grpc-js'

/**
 * The agent's HTTP/2 receive windows (per stream and per connection): what the host may send
 * before the agent says it consumed it. The host's client already uses 16 MiB (agent-client.ts).
 */
export const AGENT_RECEIVE_WINDOW_BYTES = 16 * 1024 * 1024

/**
 * Gives every HTTP/2 session of `server`'s connection injectors (create them first) receive windows
 * of `bytes` instead of HTTP/2's 64 KB.
 *
 * grpc-js has an option for a client's windows but none for a server's, so a push into the guest
 * got two WINDOW_UPDATE frames back for every 32 KB it sent, each one write to the virtio-serial
 * port and a wake-up of the host. grpc-js keeps its HTTP/2 servers in a private map: should that
 * ever change, the agent keeps the default windows (slower pushes, nothing else).
 */
export function raiseReceiveWindows(server: Server, bytes = AGENT_RECEIVE_WINDOW_BYTES): boolean {
  const servers = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers
  if (!(servers instanceof Map)) return false
  for (const http2Server of servers.keys()) {
    http2Server.on('session', (session: ServerHttp2Session) => {
      try {
        session.settings({ initialWindowSize: bytes })
        session.setLocalWindowSize(bytes)
      } catch {
        // A session destroyed before it started: nothing to raise.
      }
    })
  }
  return servers.size > 0
}
