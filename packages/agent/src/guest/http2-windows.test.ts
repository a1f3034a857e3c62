import type { Http2Server, ServerHttp2Session } from 'node:http2'
import { Duplex } from 'node:stream'
import { Server, ServerCredentials } from '@grpc/grpc-js'
import { afterEach, describe, expect, test } from 'vitest'
import { HealthService } from '../generated/grpc/health/v1/health.js'
import { HealthStatus } from './health-service.js'
import { AGENT_RECEIVE_WINDOW_BYTES, raiseReceiveWindows } from './http2-windows.js'

// raiseReceiveWindows reaches into grpc-js's private map of HTTP/2 servers: a grpc-js that renamed
// it would leave pushes at HTTP/2's 64 KB windows (~1.7x the guest's CPU per push) with nothing
// else failing. This catches that on the host, with the agent's own server set-up.

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup()
})

/** Two Duplex ends wired to each other, standing in for a channel of the multiplexer. */
function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = []
  for (let i = 0; i < 2; i++)
    ends.push(
      new Duplex({
        write(chunk, _encoding, callback) {
          ends[1 - i]!.push(chunk)
          callback()
        },
        read() {},
        final(callback) {
          ends[1 - i]!.push(null)
          callback()
        },
      }),
    )
  return [ends[0]!, ends[1]!]
}

describe('the agent server HTTP/2 receive windows', () => {
  test("a connection injector's sessions get the agent's windows", async () => {
    const server = new Server()
    server.addService(HealthService, new HealthStatus().service())
    const injector = server.createConnectionInjector(ServerCredentials.createInsecure())
    expect(raiseReceiveWindows(server)).toBe(true)
    const sessions: ServerHttp2Session[] = []
    const http2Servers = (server as unknown as { http2Servers: Map<Http2Server, unknown> }).http2Servers
    for (const http2Server of http2Servers.keys())
      http2Server.on('session', (s: ServerHttp2Session) => sessions.push(s))
    const [guestEnd, hostEnd] = duplexPair()
    cleanups.push(() => {
      server.forceShutdown()
      hostEnd.destroy()
    })
    injector.injectConnection(guestEnd)
    await new Promise((resolve) => setImmediate(resolve))
    expect(sessions).toHaveLength(1)
    expect(sessions[0]!.state.localWindowSize).toBe(AGENT_RECEIVE_WINDOW_BYTES)
  })
})
