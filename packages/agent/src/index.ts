/**
 * @vmctl/agent: the guest agent and the pieces of its protocol that the host needs.
 * The guest entry point is the bundle (`@vmctl/agent/bundle`), built from agent-main.ts.
 */

export {
  encodeEnd,
  encodeMessage,
  encodeStatus,
  LANE_SERVICE_PREFIX,
  type LaneFrame,
  LaneFrameReader,
} from './call-lane/lane-frames.js'
export { LaneServer } from './call-lane/lane-server.js'
export { CallChannel } from './channel-mux/call-channel.js'
export type { SessionChannel } from './channel-mux/channel-open.js'
export type { ChannelSink, MuxRole } from './channel-mux/channel-sink.js'
export { SpliceEnd } from './channel-mux/channel-splice.js'
export { CHANNEL_WINDOW_BYTES, MuxChannel } from './channel-mux/mux-channel.js'
export { MuxSession } from './channel-mux/mux-session.js'
export {
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthClient,
} from './generated/grpc/health/v1/health.js'
export {
  AgentClient,
  AgentService,
  type ExecExit,
  type ExecRequest,
  type ExecResponse,
  type ExecStart,
  type FileHeader,
  InfoResponse,
  type LogEntry,
  type OomKill,
  type PullResponse,
  type PushRequest,
} from './generated/vmctl/agent/v1/agent.js'
export { DevicesClient, type GuestDisk } from './generated/vmctl/agent/v1/devices.js'
export { planSpawn } from './guest/exec-service.js'
export { agentServiceWithFileCodecs } from './guest/file-codecs.js'
export type { GuestRoot } from './guest/guest-root.js'
export { agentBundlePath, buildAgentExecutable } from './host/agent-executable.js'
export {
  guestHelperPaths,
  guestSetupPath,
  vsockBridgePath,
} from './host/native-helpers.js'
export {
  AGENT_HEALTH_SERVICE,
  AGENT_PORT_NAME,
  AGENT_VSOCK_PORT,
  SETUP_PORT_NAME,
} from './protocol-names.js'
