import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import { encodeMessage, LineDecoder } from '../util/lines.js'
import { MemberCarrier } from './member-carrier.js'

// The switch's side of a member's carrier, against a stand-in supervisor on a real Unix socket:
// one that never answers (stuck) and one too old to know set-link.
describe('member carrier: set-link through the supervisor', () => {
  const cleanups: Array<() => void> = []
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup()
  })

  async function supervisor(answer: (request: Record<string, unknown>) => object | undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'vmctl-carrier-'))
    const server = net.createServer((socket) => {
      const decoder = new LineDecoder()
      socket.setEncoding('utf8')
      socket.on('data', (chunk: string) => {
        for (const request of decoder.push(chunk) as Array<Record<string, unknown>>) {
          const reply = answer(request)
          if (reply) socket.write(encodeMessage(reply))
        }
      })
    })
    await new Promise<void>((resolve) => server.listen(join(dir, 'control.sock'), resolve))
    const control = net.connect(join(dir, 'control.sock'))
    await new Promise((resolve) => control.once('connect', resolve))
    cleanups.push(() => {
      control.destroy()
      server.close()
      rmSync(dir, { recursive: true, force: true })
    })
    return control
  }

  test('a supervisor that never answers: the call fails in bounded time, naming the VM; later calls fail the same way, never hang', async () => {
    let answering = false
    const control = await supervisor(() => (answering ? { reply: 'set-link', ok: true } : undefined))
    const carrier = new MemberCarrier(control, 0, 'web-1', 300)
    const started = performance.now()
    await expect(carrier.set(false)).rejects.toThrow(
      /VM web-1's link could not be set down: its supervisor did not answer within 0.3 s/,
    )
    expect(performance.now() - started).toBeLessThan(5_000)
    answering = true
    // Answers carry no id: one never given leaves the order unknown, so the carrier treats the
    // supervisor as stuck (an answer now would be the first request's) rather than guess.
    await expect(carrier.set(true)).rejects.toThrow(/did not answer/)
  })

  test("an older supervisor's unknown-op answer fails the call at once with its message", async () => {
    const control = await supervisor((r) => ({ reply: 'error', message: `unknown op ${r.op}` }))
    const carrier = new MemberCarrier(control, 0, 'web-2', 5_000)
    await expect(carrier.set(false)).rejects.toThrow(
      /VM web-2's link could not be set down: unknown op set-link/,
    )
  })
})
