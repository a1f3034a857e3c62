import { EventEmitter } from 'node:events'
import type { AgentClient, ExecResponse } from '@vmctl/agent'
import { describe, expect, test } from 'vitest'
import { GuestProcess } from './guest-process.js'

// The bound on the agent's silence, against a scripted exec call: the watchdog's own logic. (A
// real VM's exec, its timeouts and its slow readers are agent-api.vm.test.ts's.)

/** An exec call that delivers `responses` one a tick, and holds them while the host has it paused. */
function scriptedAgent(responses: ExecResponse[]) {
  const call = new (class extends EventEmitter {
    paused = false
    cancelled = false
    pause() {
      this.paused = true
    }
    resume() {
      this.paused = false
    }
    write() {
      return true
    }
    end() {}
    cancel() {
      this.cancelled = true
    }
  })()
  const pump = setInterval(() => {
    if (call.paused || call.cancelled) return
    const next = responses.shift()
    if (next) call.emit('data', next)
  }, 5)
  return { agent: { exec: () => call } as unknown as AgentClient, call, stop: () => clearInterval(pump) }
}

const start = {
  argv: ['x'],
  shell: '',
  env: {},
  cwd: '/',
  timeoutMs: 50,
  stdin: false,
  user: '',
  noStarted: true,
}
const explain = async (error: Error) => error

describe('GuestProcess: the bound on the agent silence', () => {
  test('time the host holds the call back (a slow reader) does not count against it', async () => {
    const chunk = Buffer.alloc(512 * 1024)
    const exit = { exitCode: 0, signal: '', durationMs: 1, timedOut: false, oomKills: [] }
    const { agent, stop } = scriptedAgent([
      ...Array.from({ length: 6 }, () => ({ kind: { $case: 'stdout' as const, value: chunk } })),
      { kind: { $case: 'exit' as const, value: exit } },
    ])
    const process = new GuestProcess(agent, start, 150, false, explain)
    // Nobody reads stdout for 600 ms: the call is paused after 1 MiB, four bounds long.
    await new Promise((resolve) => setTimeout(resolve, 600))
    process.stdout.resume()
    process.stderr.resume()
    await expect(process.wait()).resolves.toEqual(exit)
    stop()
  })

  test('an agent that sends nothing while the host waits fails the process, saying so', async () => {
    const { agent, call, stop } = scriptedAgent([])
    const process = new GuestProcess(agent, start, 100, false, explain)
    await expect(process.wait()).rejects.toThrow(/sent nothing for 100 ms, past the command's own timeout/)
    expect(call.cancelled).toBe(true)
    stop()
  })
})
