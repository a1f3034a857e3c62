import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { processStartedAt } from './process-start.js'
import { isStale, VmDirectory } from './vm-directory.js'

// A VM directory with only creator.json, as create() leaves it while the creator makes the disk
// and joins networks (seconds, or minutes waiting on a lock): stale only if its creator is gone.
describe('VM directory: a creator that still lives keeps it', () => {
  let runtime: string
  beforeEach(() => {
    runtime = mkdtempSync(join(tmpdir(), 'vmctl-stale-'))
  })
  afterEach(() => rmSync(runtime, { recursive: true, force: true }))

  function directoryBy(creatorPid: number, createdAt: number): VmDirectory {
    const directory = new VmDirectory('being-made', { VMCTL_RUNTIME_DIR: runtime })
    directory.create()
    writeFileSync(
      directory.creatorFile,
      JSON.stringify({ creatorPid, createdAt: new Date(createdAt).toISOString() }),
    )
    return directory
  }

  test('a live creator that started before its record is not stale, however long ago (pid 1, two minutes)', () => {
    expect(isStale(directoryBy(1, Date.now() - 120_000))).toBe(false)
  })

  test('a pid now held by a process that started after the record is a creator gone (pid reuse)', () => {
    const started = processStartedAt(process.pid)
    expect(started).toBeGreaterThan(0)
    expect(isStale(directoryBy(process.pid, started! - 3_600_000))).toBe(true)
  })

  test('a dead creator is stale', () => {
    expect(isStale(directoryBy(2 ** 22 + 1, Date.now()))).toBe(true)
  })
})
