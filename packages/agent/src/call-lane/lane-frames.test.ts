import { describe, expect, test } from 'vitest'
import {
  encodeEnd,
  encodeMessage,
  encodeStatus,
  LaneFrameReader,
  MESSAGE_FLAG,
  STATUS_FLAG,
} from './lane-frames.js'

describe('call lane frames', () => {
  test('a message and a status, cut at every byte, come out whole', () => {
    const bytes = Buffer.concat([
      ...encodeMessage(Buffer.from('hello')),
      ...encodeMessage(Buffer.alloc(0)),
      encodeEnd(),
      encodeStatus(5, 'cannot read /x: no such file'),
    ])
    const reader = new LaneFrameReader()
    const frames = []
    for (let i = 0; i < bytes.length; i++) frames.push(...reader.push(bytes.subarray(i, i + 1)))
    expect(frames).toEqual([
      { kind: 'message', payload: Buffer.from('hello') },
      { kind: 'message', payload: Buffer.alloc(0) },
      { kind: 'end' },
      { kind: 'status', code: 5, details: 'cannot read /x: no such file' },
    ])
  })

  test("gRPC's prefix: flag byte, then the length big-endian", () => {
    const [frame] = encodeMessage(Buffer.from('abc'))
    expect([...frame!.subarray(0, 5)]).toEqual([MESSAGE_FLAG, 0, 0, 0, 3])
    expect(encodeStatus(0, '')[0]).toBe(STATUS_FLAG)
  })

  test('a large message is not copied: prefix and payload apart, read back as a view', () => {
    const payload = Buffer.alloc(1024 * 1024, 7)
    const parts = encodeMessage(payload)
    expect(parts).toHaveLength(2)
    expect(parts[1]).toBe(payload)
    const received = Buffer.concat(parts)
    const [frame] = new LaneFrameReader().push(received)
    expect(frame?.kind === 'message' && frame.payload.buffer).toBe(received.buffer)
  })

  test('a stream that is not call frames is refused', () => {
    expect(() => new LaneFrameReader().push(Buffer.from('GET / HTTP/1.1\r\n'))).toThrow(/flag/)
    const huge = Buffer.from([0, 0xff, 0xff, 0xff, 0xff])
    expect(() => new LaneFrameReader().push(huge)).toThrow(/too large/)
  })
})
