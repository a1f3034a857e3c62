import { execFileSync } from 'node:child_process'
import { EventEmitter } from 'node:events'
import type { ServerDuplexStream } from '@grpc/grpc-js'
import { describe, expect, test } from 'vitest'
import type { ExecRequest, ExecResponse } from '../generated/vmctl/agent/v1/agent.js'
import { useBuiltSpawner } from '../test-support/built-spawner.js'
import { handleExec } from './exec-service.js'

// The agent's exec handler on the host, with the built spawner and real processes, behind a call
// object that stands in for the lane's (a VM's exec is agent-api.vm.test.ts's): what a bad
// request on a running command's call leaves behind.
useBuiltSpawner()

function execCall() {
  const call = new EventEmitter() as EventEmitter & { responses: ExecResponse[] }
  call.responses = []
  Object.assign(call, {
    write: (response: ExecResponse) => call.responses.push(response) > 0,
    pause: () => {},
    resume: () => {},
    end: () => {},
  })
  call.on('error', () => {})
  handleExec(call as unknown as ServerDuplexStream<ExecRequest, ExecResponse>, {
    busybox: 'busybox',
    chrootPath: undefined,
  })
  return call
}

const start = (argv: string[]): ExecRequest => ({
  kind: {
    $case: 'start',
    value: { argv, shell: '', env: {}, cwd: '/', timeoutMs: 0, stdin: false, user: '', noStarted: false },
  },
})

const running = (marker: string) => {
  try {
    return execFileSync('pgrep', ['-f', marker]).toString().trim().length > 0
  } catch {
    return false
  }
}

describe("the exec handler: a bad request on a running command's call", () => {
  for (const [what, request] of [
    ['a signal it does not know', { kind: { $case: 'signal', value: 'SIGBOGUS' } }],
    ['a second start', start(['true'])],
  ] as const) {
    test(`${what} fails the call and ends the command, which nothing could reach after`, async () => {
      // A sleep no other process runs: its argument says which test and which run it is.
      const seconds = `${3000 + (process.pid % 1000)}.${what.length}`
      const marker = `^sleep ${seconds}$`
      const call = execCall()
      const errors: Array<{ code: number }> = []
      call.on('error', (error: { code: number }) => errors.push(error))
      call.emit('data', start(['sleep', seconds]))
      await expect.poll(() => call.responses.some((r) => r.kind?.$case === 'started')).toBe(true)
      await expect.poll(() => running(marker)).toBe(true)
      call.emit('data', request as ExecRequest)
      expect(errors).toHaveLength(1)
      // Before, the command ran on, forgotten by the Signal call and with its output cut off.
      await expect.poll(() => running(marker), { timeout: 5_000 }).toBe(false)
    })
  }
})
