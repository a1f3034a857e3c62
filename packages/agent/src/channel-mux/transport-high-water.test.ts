import { Duplex } from 'node:stream'
import { describe, expect, test } from 'vitest'
import { HIGH_WATER_BYTES } from './call-channel.js'
import { MuxSession } from './mux-session.js'

const transport = (writableHighWaterMark: number) =>
  new Duplex({ writableHighWaterMark, read() {}, write: (_c, _e, done) => done() })

describe("the multiplexer's transport and a pull's reused buffers", () => {
  test('a transport that holds more than a call before asking to wait is refused, naming the mark', () => {
    expect(() => new MuxSession('guest').attach(transport(1 << 20))).toThrow(
      /writableHighWaterMark is 1048576/,
    )
  })

  test("Node's default marks (a socket, a stream) and the call's own are taken", () => {
    const session = new MuxSession('guest')
    expect(() => session.attach(transport(HIGH_WATER_BYTES))).not.toThrow()
    expect(() => session.attach(new Duplex({ read() {}, write: (_c, _e, done) => done() }))).not.toThrow()
    session.detach('test over')
  })
})
