import { Metadata } from '@grpc/grpc-js'
import { afterEach, describe, expect, test } from 'vitest'
import { cleanLanes, frontSocket, lane, unary } from '../test-support/lane-harness.js'
import { laneAgentClient } from './lane-client.js'

afterEach(cleanLanes)

describe('a lane call before its kept connection is greeted', () => {
  test('writes ask the writer to wait past the high-water mark, and drain once the connection takes them', async () => {
    const { rawSocket, grpc, seen } = await lane()
    // The supervisor greets the kept connection only after 300 ms (a loaded host).
    const front = await frontSocket(rawSocket, () => 300)
    const client = laneAgentClient({ rawSocket: front.path }, () => grpc)
    const returns: boolean[] = []
    let drains = 0
    try {
      const answer = await unary<{ bytes: number }>((cb) => {
        const call = client.push(new Metadata(), {}, cb)
        call.on('drain', () => drains++)
        const header = { path: '/x', mode: 0, owner: '', parents: true, directory: false }
        call.write({ kind: { $case: 'header', value: header } })
        void (async () => {
          for (let i = 0; i < 8; i++) {
            const ok = call.write({ kind: { $case: 'data', value: Buffer.alloc(256 << 10, i) } })
            returns.push(ok)
            if (!ok) await new Promise((resolve) => call.once('drain', resolve))
          }
          call.end()
        })()
      })
      expect(answer.bytes).toBe(2 << 20)
      expect(seen.pushed).toBe(2 << 20)
      // Before: every write said true, and all 2 MiB waited in memory for the connection.
      expect(returns[0]).toBe(false)
      expect(drains).toBeGreaterThanOrEqual(1)
    } finally {
      client.close()
      front.close()
    }
  })
})
