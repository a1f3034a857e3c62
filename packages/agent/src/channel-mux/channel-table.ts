import type { SessionChannel } from './channel-open.js'

/**
 * A session's channels by id and, on the host, which of them the guest has not been told about
 * yet: a channel opened before the session was ready waits for it, and its OPEN goes out then.
 * The table outlives a session: those waiting channels are kept for the next one.
 */
export class ChannelTable {
  private readonly byId = new Map<number, SessionChannel>()
  private readonly unopened = new Set<SessionChannel>()
  /** Host ids are odd; past 2^32 they wrap to 1. */
  private nextId = 1

  get size(): number {
    return this.byId.size
  }

  /** Host side: the id of the next channel it opens. */
  takeId(): number {
    const id = this.nextId
    this.nextId = (this.nextId + 2) >>> 0 || 1
    return id
  }

  get(id: number): SessionChannel | undefined {
    return this.byId.get(id)
  }

  /** `announced`: the peer knows of the channel (its OPEN was sent or received). */
  add(channel: SessionChannel, announced: boolean): void {
    this.byId.set(channel.id, channel)
    if (!announced) this.unopened.add(channel)
  }

  /** The peer knows of `channel` and it is still its id's channel (ids are reused in time). */
  isAnnounced(channel: SessionChannel): boolean {
    return !this.unopened.has(channel) && this.byId.get(channel.id) === channel
  }

  /** Host side: hands every channel waiting for its OPEN to `announce`, and none waits any more. */
  announceWaiting(announce: (channel: SessionChannel) => void): void {
    for (const channel of this.unopened) announce(channel)
    this.unopened.clear()
  }

  /**
   * Removes every channel the peer knows of and hands each to `drop` as it goes (a reset). One that
   * was never announced belongs to no session yet: it stays for the next.
   */
  removeAnnounced(drop: (channel: SessionChannel) => void): void {
    for (const channel of [...this.byId.values()]) {
      if (this.unopened.has(channel)) continue
      this.byId.delete(channel.id)
      drop(channel)
    }
  }

  /** The channel is finished. */
  forget(channel: SessionChannel): void {
    if (this.byId.get(channel.id) === channel) this.byId.delete(channel.id)
    this.unopened.delete(channel)
  }
}
