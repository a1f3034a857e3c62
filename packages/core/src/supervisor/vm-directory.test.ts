import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { vmsDir } from '../paths.js'
import type { VmStatus } from './control-protocol.js'
import { processStartedAt } from './process-start.js'
import { isAlias, isStale, listVms, VmDirectory, vmNameOf } from './vm-directory.js'

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

// A spare VM taken by VM.up() (vm/spare-vm.ts) is renamed while it runs: its QEMU and supervisor
// keep the old paths, which must still lead to it, and nothing may list it twice or outlive it.
describe('VM directory: moveTo', () => {
  let runtime: string
  const env = () => ({ VMCTL_RUNTIME_DIR: runtime })
  beforeEach(() => {
    runtime = mkdtempSync(join(tmpdir(), 'vmctl-move-'))
  })
  afterEach(() => rmSync(runtime, { recursive: true, force: true }))

  test('renames, leaves a link under the old name that listings skip, and remove() takes both', () => {
    const directory = new VmDirectory('vm-spare', env())
    directory.create()
    const oldStatus = directory.statusFile
    directory.writeStatus({ name: 'vm-spare', pid: process.pid } as VmStatus)
    directory.moveTo('taken')
    expect(directory.name).toBe('taken')
    expect(directory.path).toBe(join(vmsDir(env()), 'taken'))
    expect(readFileSync(oldStatus, 'utf8')).toContain('vm-spare') // the old path resolves
    expect(isAlias(vmsDir(env()), 'vm-spare')).toBe(true)
    expect(isAlias(vmsDir(env()), 'taken')).toBe(false)
    expect(vmNameOf(vmsDir(env()), 'vm-spare')).toBe('taken')
    expect(listVms(env()).map((vm) => vm.directory.name)).toEqual(['taken'])
    directory.remove()
    expect(readdirSync(vmsDir(env()))).toEqual([])
  })

  test('refuses a name another VM has, and stays where it was', () => {
    const other = new VmDirectory('taken', env())
    other.create()
    const directory = new VmDirectory('vm-spare', env())
    directory.create()
    expect(() => directory.moveTo('taken')).toThrow()
    expect(directory.name).toBe('vm-spare')
    expect(existsSync(other.creatorFile)).toBe(true)
  })

  test('a link left dangling (its supervisor killed before removing it) is not an alias: gc sees it', () => {
    const directory = new VmDirectory('vm-spare', env())
    directory.create()
    directory.moveTo('taken')
    rmSync(directory.path, { recursive: true })
    expect(isAlias(vmsDir(env()), 'vm-spare')).toBe(false)
    expect(isStale(new VmDirectory('vm-spare', env()))).toBe(true)
  })
})
