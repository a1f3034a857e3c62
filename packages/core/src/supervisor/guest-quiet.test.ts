import { spawn } from 'node:child_process'
import { afterEach, describe, expect, test } from 'vitest'
import { untilGuestQuiet } from './guest-quiet.js'

// Real processes standing in for QEMU: what the wait reads is their CPU time.
const children: ReturnType<typeof spawn>[] = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL')
})
/** A process that spins for `busyMs`, then sleeps. */
function busyFor(busyMs: number) {
  const code = `const end = Date.now() + ${busyMs}; while (Date.now() < end) {} setTimeout(() => {}, 60_000)`
  const child = spawn(process.execPath, ['-e', code], { stdio: 'ignore' })
  children.push(child)
  return child.pid
}

describe('waiting for a parked guest to go quiet before its template is saved', () => {
  test('returns once the process has used (almost) no CPU for 100 ms, not before its work ended', async () => {
    const result = await untilGuestQuiet(busyFor(600), 5_000)
    expect(result.quiet).toBe(true)
    expect(result.waitedMs).toBeGreaterThan(500)
    expect(result.waitedMs).toBeLessThan(4_000)
  })

  test('gives up at its bound on a process that stays busy; at once on one that is gone', async () => {
    const busy = await untilGuestQuiet(busyFor(60_000), 400)
    expect(busy.quiet).toBe(false)
    expect(busy.waitedMs).toBeGreaterThanOrEqual(400)
    const gone = await untilGuestQuiet(2 ** 22 + 7, 5_000) // no such pid (above pid_max's default)
    expect(gone.quiet).toBe(false)
    expect(gone.waitedMs).toBeLessThan(100)
  })
})
