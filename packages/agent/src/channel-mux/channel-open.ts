import { CallChannel } from './call-channel.js'
import type { ChannelSink } from './channel-sink.js'
import { encodeFrame, FrameType } from './frame-codec.js'
import { MuxChannel } from './mux-channel.js'

/**
 * A channel as its session drives it: a MuxChannel (a Node stream), a CallChannel (the guest's end
 * of one call), or one end of a splice (channel-splice.ts: a supervisor relaying a client's call).
 */
export interface SessionChannel {
  readonly id: number
  readonly service: string
  /** host: OPEN was sent (at once, or when the session became ready). */
  opened(): void
  receive(data: Buffer): void
  receiveEnd(): void
  receiveClose(): void
  receiveWindow(bytes: number): void
  /** The session dropped the channel (a reset, its transport gone). */
  destroy(error?: Error): void
  listenerCount(event: string): number
}

/** Makes the channel of an OPEN (guest side) or of openChannel (host side) on `sink`. */
export type ChannelMaker = (sink: ChannelSink, id: number, service: string) => SessionChannel

/** What the guest made of the host's OPEN: a channel for one call, a stream, or its maker's own. */
export type OpenedChannel =
  | { kind: 'call'; channel: CallChannel }
  | { kind: 'channel'; channel: MuxChannel }
  | { kind: 'made'; channel: SessionChannel }

/**
 * The guest's side of an OPEN frame for `service` on channel `id`: the session's own maker's
 * channel if it has one (a supervisor relaying its clients' calls), else a CallChannel when
 * `callService(service)` says the service is served by one call (no Node stream: its request and
 * answer), else a MuxChannel, a Node Duplex (gRPC, "", or a raw service).
 */
export function acceptOpen(
  sink: ChannelSink,
  id: number,
  service: string,
  callService: ((service: string) => boolean) | undefined,
  make?: ChannelMaker,
): OpenedChannel {
  if (make) return { kind: 'made', channel: make(sink, id, service) }
  if (callService?.(service)) return { kind: 'call', channel: new CallChannel(sink, id, service) }
  return { kind: 'channel', channel: new MuxChannel(sink, id, service) }
}

/** The host's OPEN frame for `channel`: its id and the service it is for. */
export function openFrame(channel: SessionChannel): Buffer {
  return encodeFrame(FrameType.Open, channel.id, Buffer.from(channel.service))
}
