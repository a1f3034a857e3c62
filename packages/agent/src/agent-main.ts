/**
 * The guest agent's entry point: started by vmctl's initramfs init before the guest's root is
 * mounted (so a snapshot can be taken before any host share exists), it serves gRPC on every
 * channel the host opens over the `vmctl.agent` virtio-serial port, or over vsock when the kernel
 * command line says `vmctl_agent=vsock:PORT`.
 */
import { writeFileSync } from 'node:fs'
import { Server, ServerCredentials } from '@grpc/grpc-js'
import { LANE_SERVICE_PREFIX } from './call-lane/lane-frames.js'
import { LaneServer } from './call-lane/lane-server.js'
import { MuxSession } from './channel-mux/mux-session.js'
import {
  HealthService,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from './generated/grpc/health/v1/health.js'
import type { AgentServer } from './generated/vmctl/agent/v1/agent.js'
import { DevicesService } from './generated/vmctl/agent/v1/devices.js'
import { agentLog } from './guest/agent-log.js'
import { devicesService } from './guest/disk-watch-service.js'
import { handleExec } from './guest/exec-service.js'
import { handleSignal } from './guest/exec-signals.js'
import { agentServiceWithFileCodecs } from './guest/file-codecs.js'
import { handlePull, handlePush } from './guest/file-service.js'
import { guestRootFromEnv } from './guest/guest-root.js'
import { HealthStatus } from './guest/health-service.js'
import { raiseReceiveWindows } from './guest/http2-windows.js'
import { guestInfo } from './guest/info-service.js'
import { handleLogs } from './guest/logs-service.js'
import { finishPendingCompiles } from './guest/pending-compiles.js'
import { powerOff } from './guest/power-service.js'
import { serveRawChannel } from './guest/raw-services.js'
import { findVirtioPort, openVirtioPort } from './guest/virtio-port.js'
import { openVsockTransport, vsockPortFromEnv } from './guest/vsock-transport.js'
import { AGENT_HEALTH_SERVICE, AGENT_PORT_NAME } from './protocol-names.js'

// The guest's ps, top and pidof know a process by its name (/proc/PID/comm): the executable's on
// Node 20 and 22, but Node 24 names its main thread "MainThread". Set here, it is the agent's own
// on every Node (libuv sets the thread's name with the title).
process.title = 'vmctl-agent'

// A guest out of memory loses the test's processes before the agent that reports on them: the OOM
// killer weighs each process by its memory plus this (-1000 to 1000, in thousandths of the guest's
// memory), so the agent (~70 MB) is not taken before a command's many smaller workers. Not -1000:
// a command started through child_process (when the spawner cannot run) inherits it; the spawner's
// commands are set back to 0 (native/spawner-child.c).
try {
  writeFileSync('/proc/self/oom_score_adj', '-500')
} catch {}

const PORT_NAME = process.env.vmctl_agent_port ?? AGENT_PORT_NAME
const VSOCK_PORT = vsockPortFromEnv(process.env)
/** The runtime disk's vsock-bridge, next to the agent executable (elsewhere in tests). */
const VSOCK_BRIDGE = process.env.vmctl_vsock_bridge ?? '/vmctl/vsock-bridge'
const REOPEN_DELAY_MS = 20
const SESSION_MARKER = '/run/vmctl/agent-session'

function log(message: string): void {
  agentLog.write(message)
}

const root = guestRootFromEnv(process.env)
const health = new HealthStatus()
const server = new Server({
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.keepalive_permit_without_calls': 1,
  // Channelz's per-call bookkeeping (counters, timestamps) serves a debugging service the agent
  // does not expose: work in the guest's emulated CPU on every call for nothing.
  'grpc.enable_channelz': 0,
})
server.addService(HealthService, health.service())
// SERVING as soon as the agent answers (templates are saved then). Whether commands can run (the
// root is mounted) is guest-setup's to say, on its own port: see packages/agent/native.
health.set('', ServingStatus.SERVING)
health.set(AGENT_HEALTH_SERVICE, ServingStatus.SERVING)
const agent: AgentServer = {
  exec: (call) => handleExec(call, root),
  signal: handleSignal,
  push: (call, callback) => handlePush(call, callback, root),
  pull: (call) => handlePull(call, root),
  logs: (call) => handleLogs(call),
  info: (_call, callback) => callback(null, guestInfo(root)),
  shutdown: (call, callback) => {
    log(call.request.reboot ? 'reboot requested' : 'power-off requested')
    callback(null, {})
    powerOff(root, call.request.reboot)
  },
}
server.addService(agentServiceWithFileCodecs(), agent)
const devices = devicesService(root)
server.addService(DevicesService, devices)
// The same handlers without HTTP/2: one channel per call (call-lane/lane-frames.ts).
const lane = new LaneServer()
lane.addService(agentServiceWithFileCodecs(), agent)
lane.addService(DevicesService, devices)
const injector = server.createConnectionInjector(ServerCredentials.createInsecure())
if (!raiseReceiveWindows(server)) log('HTTP/2 receive windows left at 64 KB: pushes will be slower')

const session = new MuxSession('guest', (service) => service.startsWith(LANE_SERVICE_PREFIX))
// Tells the init that this agent served a host: from then on an exit is a crash to restart, not
// an agent that cannot start (see the init script's restart loop). In RAM, so templates keep it.
session.once('ready', () => {
  try {
    writeFileSync(SESSION_MARKER, `${process.pid}\n`)
  } catch {}
})
session.on('channel', (channel, service) => {
  if (!service) injector.injectConnection(channel)
  else if (!lane.serve(channel, service) && !serveRawChannel(channel, service)) channel.destroy()
})
// What V8 compiled for the warm-up's calls goes into the template installed (pending-compiles.ts).
session.on('parking', finishPendingCompiles)
session.on('call', (channel, service) => {
  if (!lane.serve(channel, service)) channel.destroy()
})

function connectPort(): void {
  const path = findVirtioPort(PORT_NAME)
  if (!path) {
    // virtio-serial ports appear asynchronously after the driver loads.
    setTimeout(connectPort, 5)
    return
  }
  let port: ReturnType<typeof openVirtioPort>
  try {
    port = openVirtioPort(path, log)
  } catch (error) {
    log(`cannot open ${path}: ${(error as Error).message}`)
    setTimeout(connectPort, 200)
    return
  }
  let reopened = false
  const reopen = () => {
    if (reopened) return
    reopened = true
    // While no host is connected the port reads EOF and is not writable; a graceful close would
    // wait forever on its last writes, so destroy and poll for the next host.
    port.destroy()
    setTimeout(connectPort, REOPEN_DELAY_MS)
  }
  port.on('end', reopen)
  port.on('close', reopen)
  port.on('error', reopen)
  session.attach(port)
}

function connectVsock(port: number): void {
  let restarted = false
  const transport = openVsockTransport(VSOCK_BRIDGE, port, log, (reason) => {
    if (restarted) return
    restarted = true
    log(`${reason}; restarting it`)
    transport.destroy()
    setTimeout(() => connectVsock(port), 200)
  })
  transport.on('error', (error) => log(`vsock transport: ${error.message}`))
  session.attach(transport)
}

process.on('uncaughtException', (error) => log(`uncaught: ${error.stack ?? error}`))
if (VSOCK_PORT !== undefined) connectVsock(VSOCK_PORT)
else connectPort()
log(`started (pid ${process.pid}, node ${process.version})`)
