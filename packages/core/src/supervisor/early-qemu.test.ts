import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { pollUntil } from '../util/timing.js'
import { EarlyQemu, type EarlyQemuPlan, fileIdentity } from './early-qemu.js'

const dir = mkdtempSync(join(tmpdir(), 'vmctl-early-qemu-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const ram = join(dir, 'ram')
writeFileSync(ram, 'template RAM')

/** A plan whose "QEMU" is a sleep (a real process: what take and discard do to it is real too). */
function plan(seconds = '30'): EarlyQemuPlan {
  return { command: ['/bin/sleep', seconds], ram: { path: ram, identity: fileIdentity(ram)! } }
}
const start = (p: EarlyQemuPlan) => EarlyQemu.start(JSON.stringify(p))!
const gone = (pid: number | undefined) =>
  pollUntil(
    () => {
      try {
        process.kill(pid!, 0)
        return false
      } catch {
        return true
      }
    },
    { timeoutMs: 5_000, everyMs: 20 },
  )

describe('a QEMU started before the supervisor loads', () => {
  test('taken for the very command it runs; killed for any other', async () => {
    const same = start(plan())
    const pid = same.pid
    const child = same.take(plan().command)
    expect(child?.pid).toBe(pid)
    expect(same.take(plan().command)).toBeUndefined() // once
    child!.kill('SIGKILL')

    const other = start(plan())
    expect(other.take(['/bin/sleep', '31'])).toBeUndefined()
    expect(await gone(other.pid)).toBe(true)
  })

  test('not taken once the template RAM file is another (a template remade under the same key)', async () => {
    const early = start(plan())
    writeFileSync(ram, 'another template RAM, same key')
    expect(early.take(plan().command)).toBeUndefined()
    expect(await gone(early.pid)).toBe(true)
  })

  test('not taken once it exited; discarded when the VM goes down first; no plan, no process', async () => {
    const exited = start(plan('0'))
    await gone(exited.pid)
    await pollUntil(() => exited.take(plan('0').command) === undefined, { timeoutMs: 5_000, everyMs: 20 })
    const unused = start(plan())
    unused.discard()
    expect(await gone(unused.pid)).toBe(true)
    expect(EarlyQemu.start('not json')).toBeUndefined()
    expect(EarlyQemu.start('')).toBeUndefined()
  })
})
