import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { readProc } from './proc-read.js'

// A stopped Node process: its /proc files over a page (maps: ~7 KB, smaps: past 64 KB) stay still.
let pid = 0
beforeAll(async () => {
  const child = spawn(process.execPath, ['-e', 'process.kill(process.pid, "SIGSTOP")'], { stdio: 'ignore' })
  await once(child, 'spawn')
  const started = Date.now()
  while (!readFileSync(`/proc/${child.pid}/stat`, 'utf8').match(/\) T /) && Date.now() - started < 60_000)
    await sleep(10)
  pid = child.pid!
})
afterAll(() => {
  if (pid) process.kill(pid, 'SIGKILL')
})

describe('readProc', () => {
  test('a seq_file over a page is read to its end, not its first page', () => {
    const whole = readFileSync(`/proc/${pid}/maps`, 'latin1')
    expect(whole.length).toBeGreaterThan(4096)
    expect(readProc(`/proc/${pid}/maps`)).toBe(whole)
    // Again, on the kept descriptor.
    expect(readProc(`/proc/${pid}/maps`)).toBe(whole)
  })

  test('a file past the buffer is no text at all, never a cut one', () => {
    expect(readFileSync(`/proc/${pid}/smaps`).length).toBeGreaterThan(64 * 1024)
    expect(readProc(`/proc/${pid}/smaps`)).toBeUndefined()
  })

  test('a small file in one read', () => {
    expect(readProc('/proc/self/stat')?.startsWith(`${process.pid} (`)).toBe(true)
  })
})
