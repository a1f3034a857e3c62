import { EventEmitter } from 'node:events'
import type { MuxSession } from '@vmctl/agent'
import { describe, expect, test } from 'vitest'
import { bootDeadline } from './boot-deadline.js'
import { rehearseFirstCommand } from './first-command-rehearsal.js'

// The rehearsal itself runs in a real VM (agent-warm-up.vm.test.ts). Here: what it leaves behind
// when the boot ends before the agent ever answered, which no VM test can time.
function waitingMux(): MuxSession {
  return Object.assign(new EventEmitter(), { isReady: false }) as unknown as MuxSession
}

const directory = { agentSocket: '/nonexistent/agent.sock', rawSocket: '/nonexistent/raw.sock' }

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 5))
}

/** Starts a rehearsal on a session whose agent has not answered; returns the lines it logs. */
function rehearse(
  mux: MuxSession,
  rootMounted: boolean,
  deadlineMs: number,
  ended: Promise<unknown>,
): string[] {
  const lines: string[] = []
  rehearseFirstCommand(
    directory,
    mux,
    () => rootMounted,
    { deadline: bootDeadline(deadlineMs), ended },
    (format, ...args) => lines.push([format, ...args].join(' ')),
  )
  return lines
}

describe('the first command rehearsal, when the agent never answers', () => {
  test('a boot that fails takes the wait with it: no listener left on the session', async () => {
    const mux = waitingMux()
    let fail!: (error: Error) => void
    const lines = rehearse(
      mux,
      false,
      60_000,
      new Promise((_, reject) => {
        fail = reject
      }),
    )
    expect(mux.listenerCount('ready')).toBe(1)
    fail(new Error('QEMU exited'))
    await until(() => lines.length > 0)
    expect(mux.listenerCount('ready')).toBe(0)
    expect(lines).toEqual(['first command rehearsal dropped: %s QEMU exited'])
  })

  test('the boot deadline ends the wait too', async () => {
    const mux = waitingMux()
    const lines = rehearse(mux, false, 20, new Promise(() => {}))
    await until(() => lines.length > 0)
    expect(mux.listenerCount('ready')).toBe(0)
    expect(lines).toEqual(['first command rehearsal dropped: %s the agent did not answer within 0 s'])
  })

  test('a root mounted before the agent answered: nothing is run', async () => {
    const mux = waitingMux()
    const lines = rehearse(mux, true, 60_000, new Promise(() => {}))
    mux.emit('ready')
    await until(() => lines.length > 0)
    expect(lines).toEqual(['first command not rehearsed: the root was mounted before the agent answered'])
  })
})
