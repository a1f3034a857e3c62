import type { FrameType } from './frame-codec.js'

export type MuxRole = 'host' | 'guest'

/** A channel as its session knows it: an identity with an id (several may share one id in time). */
export interface SinkChannel {
  readonly id: number
}

/**
 * What a MuxChannel needs from the session it belongs to, and all it may call. MuxSession
 * implements it; the channel imports only this, so the two files do not import each other.
 */
export interface ChannelSink {
  readonly role: MuxRole
  /** The session is ready and `channel` is its live, opened channel of that id. */
  canSend(channel: SinkChannel): boolean
  /**
   * Sends one DATA frame (see frame-outbox.ts for how it is written). Returns a promise only when
   * the transport is full: resolved when it drains.
   */
  sendData(channel: number, payload: Buffer): Promise<void> | undefined
  sendControl(type: FrameType, channel: number, payload?: Buffer): void
  sendWindow(channel: number, bytes: number): void
  /** The channel is finished: drop it from the session's table. */
  forget(channel: SinkChannel): void
}
