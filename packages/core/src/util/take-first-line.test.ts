import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, type Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, describe, expect, test } from 'vitest'
import { socketPair } from '../test-support/socket-pair.js'
import { takeFirstLine } from './take-first-line.js'

const dir = mkdtempSync(join(tmpdir(), 'vmctl-take-first-line-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Everything the stream still gives, read by a consumer that attaches now (as a pipe would). */
async function rest(stream: Readable): Promise<string> {
  const chunks: Buffer[] = []
  stream.on('data', (chunk: Buffer) => chunks.push(chunk))
  stream.resume()
  await once(stream, 'end')
  return Buffer.concat(chunks).toString()
}

// A short bound: a helper that loses the rest leaves a reader waiting for its end.
describe("a stream's first line, then the rest for the next reader", { timeout: 5_000 }, () => {
  test('a line that comes in pieces is read whole; the bytes after it, in its last piece and later, reach the consumer', async () => {
    const stream = new PassThrough()
    const line = takeFirstLine(stream)
    stream.write('rpc /vmctl')
    stream.write('.agent.Agent')
    stream.write('/Info\nthe request')
    stream.end(', and more')
    expect(await line).toBe('rpc /vmctl.agent.Agent/Info')
    expect(await rest(stream)).toBe('the request, and more')
  })

  test('the stream is left paused: a consumer that attaches later misses nothing', async () => {
    const stream = new PassThrough()
    const line = takeFirstLine(stream)
    stream.end('relay 1\nframes')
    expect(await line).toBe('relay 1')
    expect(stream.isPaused()).toBe(true)
    await sleep(20)
    expect(await rest(stream)).toBe('frames')
  })

  test('an empty first line is a line', async () => {
    const stream = new PassThrough()
    const line = takeFirstLine(stream)
    stream.end('\nbody')
    expect(await line).toBe('')
    expect(await rest(stream)).toBe('body')
  })

  test('a line longer than its limit is none, whether its newline has come yet or not', async () => {
    const unfinished = new PassThrough()
    const first = takeFirstLine(unfinished, 8)
    unfinished.write('12345')
    unfinished.write('6789')
    expect(await first).toBeUndefined()
    const whole = new PassThrough()
    const second = takeFirstLine(whole, 8)
    whole.write('123456789\nrest')
    expect(await second).toBeUndefined()
    const atLimit = new PassThrough()
    const third = takeFirstLine(atLimit, 8)
    atLimit.write('12345678\n')
    expect(await third).toBe('12345678')
  })

  test('a stream that ends, or is destroyed, before its newline has no line', async () => {
    const ended = new PassThrough()
    const first = takeFirstLine(ended)
    ended.end('no newline')
    expect(await first).toBeUndefined()
    const destroyed = new PassThrough()
    const second = takeFirstLine(destroyed)
    destroyed.write('half a li')
    destroyed.destroy(new Error('gone'))
    expect(await second).toBeUndefined()
    expect(await takeFirstLine(destroyed)).toBeUndefined()
  })

  test('over a real socket: a line and a large body in one write, then the peer closing', async () => {
    const [client, server] = await socketPair(join(dir, 'pair'))
    const body = Buffer.alloc(1 << 20, 0x61)
    const line = takeFirstLine(server)
    client.end(Buffer.concat([Buffer.from('raw-sink\n'), body]))
    expect(await line).toBe('raw-sink')
    const received = await rest(server)
    expect(received.length).toBe(body.length)
    expect(received).toBe(body.toString())

    const [early, accepted] = await socketPair(join(dir, 'pair-2'))
    const none = takeFirstLine(accepted)
    early.end('closed before its newl')
    expect(await none).toBeUndefined()
    accepted.destroy()
  })
})
