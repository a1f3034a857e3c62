import { spawn } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
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

describe('the plan on the supervisor stdin', () => {
  // The built module, in a child spawned as start-vm.ts spawns the supervisor: stdin a pipe from
  // Node (a socketpair, not a FIFO, which a FIFO-only check took for "no plan").
  const built = fileURLToPath(new URL('../../dist/supervisor/early-qemu.js', import.meta.url))
  const readInChild = (input: string, stdin?: number) =>
    new Promise<string>((resolve, reject) => {
      const code = `import(${JSON.stringify(built)}).then((m) => process.stdout.write(JSON.stringify(m.readEarlyQemuPlan())))`
      const child = spawn(process.execPath, ['-e', code], { stdio: [stdin ?? 'pipe', 'pipe', 'inherit'] })
      let out = ''
      child.stdout?.on('data', (chunk: Buffer) => (out += chunk))
      child.on('error', reject)
      child.on('close', (status) =>
        status === 0 ? resolve(JSON.parse(out) as string) : reject(new Error(`exit ${status}`)),
      )
      child.stdin?.end(input)
    })

  test('read whole from a pipe as VM.up() writes it; empty when it wrote nothing', async () => {
    const text = JSON.stringify(plan())
    expect(await readInChild(text)).toBe(text)
    expect(await readInChild('')).toBe('')
  })

  test('not read from a file: stdin that VM.up() did not give (a supervisor started by hand)', async () => {
    const file = join(dir, 'stdin')
    writeFileSync(file, JSON.stringify(plan()))
    const fd = openSync(file, 'r')
    try {
      expect(await readInChild('', fd)).toBe('')
    } finally {
      closeSync(fd)
    }
  })
})
