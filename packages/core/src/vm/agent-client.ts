import { credentials } from '@grpc/grpc-js'
import { AgentClient } from '@vmctl/agent'
import type { VmDirectory } from '../supervisor/vm-directory.js'
import { laneAgentClient } from './lane-client.js'

/**
 * A gRPC client for a VM's agent, through its supervisor's agent socket (each connection becomes
 * one channel of the multiplexed port). It connects on its first call.
 *
 * Not earlier: connecting while the VM boots saved ~0.09 s of the first call after a restore, but
 * a connection still being set up when the channel is reset (a snapshot right after VM.up())
 * leaves grpc-js failing every call at once until its reconnect backoff ends.
 */
export function grpcAgentClient(directory: Pick<VmDirectory, 'agentSocket'>): AgentClient {
  const client = new AgentClient(`unix://${directory.agentSocket}`, credentials.createInsecure(), {
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
    'grpc.initial_reconnect_backoff_ms': 50,
    'grpc.max_reconnect_backoff_ms': 1000,
    // HTTP/2's default 64 KB window makes output a round trip per 64 KB; through a guest under
    // TCG that capped 10 MB of stdout at ~2 MB/s.
    'grpc-node.flow_control_window': 16 * 1024 * 1024,
  })
  return client
}

/**
 * The agent client vmctl uses: calls over the call lane (lane-client.ts), or over gRPC with
 * VMCTL_AGENT_TRANSPORT=grpc; the gRPC client is made (and connects) only when a call needs it.
 */
export function agentClient(directory: Pick<VmDirectory, 'agentSocket' | 'rawSocket'>): AgentClient {
  let grpc: AgentClient | undefined
  let closed = false
  const grpcClient = () => {
    grpc ??= grpcAgentClient(directory)
    if (closed) grpc.close()
    return grpc
  }
  const client = laneAgentClient(directory, grpcClient)
  // The Devices client rides on the gRPC client's connection (disks/disk-attach.ts): disk calls
  // stay on gRPC.
  client.getChannel = () => grpcClient().getChannel()
  const closeLane = client.close as (reason?: string) => void
  client.close = ((reason?: string) => {
    closed = true
    closeLane(reason)
    grpc?.close()
  }) as AgentClient['close']
  return client
}

/**
 * Closes `client` and ends the calls still open on it; a call of vmctl's own client (agentClient)
 * fails with "the call was cancelled: `reason`", so `reason` says why the client went (a gRPC
 * client's calls are only cancelled).
 */
export function closeAgentClient(client: AgentClient, reason: string): void {
  ;(client.close as (reason?: string) => void).call(client, reason)
}
