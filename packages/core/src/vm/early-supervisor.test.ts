import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { offerEarlySupervisor, takeEarlySupervisor } from './early-supervisor.js'

const dir = mkdtempSync(join(tmpdir(), 'vmctl-early-supervisor-test-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A stand-in for `supervisor.cjs --await-launch`, spawned as the CLI spawns it. */
function early(script: string) {
  return spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'ignore', 'pipe'] })
}

describe('an early supervisor handed its VM (real processes, no VM)', () => {
  test('one that died before the hand-off is not used, and its stderr goes to the VM log', async () => {
    const child = early("process.stderr.write('FATAL ERROR: boom\\n'); process.exit(7)")
    offerEarlySupervisor(child)
    await once(child, 'close')
    const log = join(dir, 'dead.log')
    expect(takeEarlySupervisor(log)).toBeUndefined()
    expect(readFileSync(log, 'utf8')).toMatch(
      /ended before it was handed its VM \(status 7\).*\nFATAL ERROR: boom\n/,
    )
  })

  test('one that died while this process did not look is seen dead too (not handed a VM)', async () => {
    const child = early('process.exit(0)')
    offerEarlySupervisor(child)
    // Waited for without running this event loop (no await), so the ChildProcess does not see
    // the exit: the kernel's word (a zombie) is all there is, as in a CLI busy loading.
    const started = Date.now()
    while (!readFileSync(`/proc/${child.pid}/stat`, 'utf8').match(/\) Z /) && Date.now() - started < 60_000)
      spawnSync('sleep', ['0.05'])
    expect(child.exitCode).toBe(null)
    expect(takeEarlySupervisor(join(dir, 'unseen.log'))).toBeUndefined()
  })

  test('one that waits is handed over; its stderr before and after goes to the log', async () => {
    const child = early(
      "process.stderr.write('loaded\\n'); process.stdin.once('data', () => { process.stderr.write('after\\n'); process.exit(0) })",
    )
    offerEarlySupervisor(child)
    await once(child.stderr!, 'data')
    const log = join(dir, 'alive.log')
    expect(takeEarlySupervisor(log)).toBe(child)
    child.stdin?.write('"/vm/dir"\n')
    await once(child, 'close')
    expect(readFileSync(log, 'utf8')).toBe('loaded\nafter\n')
  })
})
