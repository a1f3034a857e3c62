import { CallChannel } from './call-channel.js'
import type { ChannelSink } from './channel-sink.js'
import { encodeFrame, FrameType } from './frame-codec.js'
import { MuxChannel } from './mux-channel.js'

/** A channel of the session: a Node stream, or (guest, for one call) a CallChannel. */
export type SessionChannel = MuxChannel | CallChannel

/** What the guest made of the host's OPEN: a channel for one call, or a stream. */
export type OpenedChannel = { kind: 'call'; channel: CallChannel } | { kind: 'channel'; channel: MuxChannel }

/**
 * The guest's side of an OPEN frame for `service` on channel `id`: a CallChannel when
 * `callService(service)` says the service is served by one call (no Node stream: its request and
 * answer), else a MuxChannel, a Node Duplex (gRPC, "", or a raw service).
 */
export function acceptOpen(
  sink: ChannelSink,
  id: number,
  service: string,
  callService: ((service: string) => boolean) | undefined,
): OpenedChannel {
  if (callService?.(service)) return { kind: 'call', channel: new CallChannel(sink, id, service) }
  return { kind: 'channel', channel: new MuxChannel(sink, id, service) }
}

/** The host's OPEN frame for `channel`: its id and the service it is for. */
export function openFrame(channel: SessionChannel): Buffer {
  return encodeFrame(FrameType.Open, channel.id, Buffer.from(channel.service))
}
