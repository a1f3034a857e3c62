import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, test } from 'vitest'
import { isAlive } from '../supervisor/vm-directory.js'
import { eventually } from '../test-support/vm-processes.js'
import { offeredEarlySupervisor, releaseEarlySupervisor } from './early-supervisor.js'
import { mayTakeEarlySupervisor, startSpareSupervisor } from './spare-supervisor.js'

const built = fileURLToPath(new URL('../../dist/vm/spare-supervisor.js', import.meta.url))

/** Loaded and waiting for its VM (supervisor-main.ts names itself so once its modules are in). */
function waiting(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('waiting for its VM')
  } catch {
    return false
  }
}

/** A Node process that starts a spare (the built core) and prints its pid, then runs `then`. */
async function parentWithSpare(then: string) {
  const script = `const { startSpareSupervisor } = await import(${JSON.stringify(built)})
const spare = startSpareSupervisor()
process.stdout.write(spare.pid + '\\n')
${then}`
  const parent = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const [line] = (await once(parent.stdout!, 'data')) as [Buffer]
  return { parent, spare: Number(line.toString().trim()) }
}

afterEach(() => releaseEarlySupervisor())

describe('a spare supervisor (real processes, no VM)', () => {
  test('it goes when its process is killed with SIGKILL, loaded and waiting', async () => {
    const { parent, spare } = await parentWithSpare('setInterval(() => {}, 1000)')
    await eventually(() => waiting(spare) || !isAlive(spare), 60_000, 'the spare to load')
    expect(isAlive(spare)).toBe(true)
    parent.kill('SIGKILL')
    await once(parent, 'exit')
    await eventually(
      () => !isAlive(spare),
      60_000,
      `the spare (pid ${spare}) to exit after its parent was killed`,
    )
  })

  test('it does not keep its process alive, and goes when the process ends', async () => {
    const { parent, spare } = await parentWithSpare('')
    const [code] = await once(parent, 'exit')
    expect(code).toBe(0)
    await eventually(() => !isAlive(spare), 60_000, `the spare (pid ${spare}) to exit with its parent`)
  })

  test('it is let go when VM.up() would run its supervisor under another environment', async () => {
    const first = startSpareSupervisor()!
    process.env.VMCTL_SPARE_SUPERVISOR = '0'
    try {
      expect(mayTakeEarlySupervisor()).toBe(false) // switched off: not taken, still offered
    } finally {
      delete process.env.VMCTL_SPARE_SUPERVISOR
    }
    expect(offeredEarlySupervisor()).toBe(first)
    startSpareSupervisor()
    expect(mayTakeEarlySupervisor()).toBe(true) // the same environment
    const second = startSpareSupervisor()! // offering another lets the one before go
    await once(first, 'exit')
    process.env.VMCTL_SPARE_TEST = '1'
    try {
      expect(mayTakeEarlySupervisor()).toBe(false)
    } finally {
      delete process.env.VMCTL_SPARE_TEST
    }
    expect(offeredEarlySupervisor()).toBeUndefined()
    const [code] = await once(second, 'exit')
    expect(code).toBe(0)
  })
})
