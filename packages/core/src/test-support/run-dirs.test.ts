import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { claimRunDir, sweepDeadRunDirs } from './run-dirs.js'

const base = mkdtempSync(join(tmpdir(), 'vmctl-run-dirs-test-'))
afterAll(() => rmSync(base, { recursive: true, force: true }))

/** A pid that ran and is gone now. */
function deadPid(): number {
  return spawnSync('true').pid!
}

function dirOwnedBy(name: string, owner: object | undefined): string {
  const dir = join(base, `vmctl-run-${name}`)
  mkdirSync(join(dir, 'vms'), { recursive: true, mode: 0o700 })
  if (owner) writeFileSync(join(dir, 'owner.json'), JSON.stringify(owner))
  return dir
}

describe('sweepDeadRunDirs', () => {
  it("removes a killed run's directory and keeps a live run's, side by side", () => {
    const live = claimRunDir(base)
    const dead = dirOwnedBy('dead', { pid: deadPid(), writtenAt: new Date().toISOString() })
    expect(sweepDeadRunDirs(base)).toEqual([dead])
    expect(existsSync(dead)).toBe(false)
    expect(existsSync(live)).toBe(true)
  })

  it('takes a pid that a later process got for dead (the owner started after it wrote the file)', () => {
    const reused = dirOwnedBy('reused', { pid: process.pid, writtenAt: '2001-01-01T00:00:00Z' })
    expect(sweepDeadRunDirs(base)).toContain(reused)
  })

  it("keeps a dead owner's directory while a process still runs with it as VMCTL_RUNTIME_DIR", async () => {
    const dir = dirOwnedBy('straggler', { pid: deadPid(), writtenAt: new Date().toISOString() })
    const straggler = spawn('sleep', ['30'], {
      env: { ...process.env, VMCTL_RUNTIME_DIR: dir },
      stdio: 'ignore',
    })
    try {
      expect(sweepDeadRunDirs(base)).not.toContain(dir)
      expect(existsSync(dir)).toBe(true)
    } finally {
      straggler.kill('SIGKILL')
      await new Promise((resolve) => straggler.once('exit', resolve))
    }
    expect(sweepDeadRunDirs(base)).toContain(dir)
  })

  it("keeps a dead owner's directory while a VM's supervisor in it still runs (no VMCTL_RUNTIME_DIR in its env)", async () => {
    const dir = dirOwnedBy('live-vm', { pid: deadPid(), writtenAt: new Date().toISOString() })
    const env = { ...process.env }
    delete env.VMCTL_RUNTIME_DIR
    const supervisor = spawn('sleep', ['30'], { env, stdio: 'ignore' })
    mkdirSync(join(dir, 'vms', 'vm-a'), { recursive: true, mode: 0o700 })
    writeFileSync(join(dir, 'vms', 'vm-a', 'status.json'), JSON.stringify({ pid: supervisor.pid }))
    writeFileSync(
      join(dir, 'vms', 'vm-a', 'launch.json'),
      JSON.stringify({ creatorPid: deadPid(), createdAt: new Date().toISOString() }),
    )
    try {
      expect(sweepDeadRunDirs(base)).not.toContain(dir)
      expect(existsSync(join(dir, 'vms', 'vm-a'))).toBe(true)
    } finally {
      supervisor.kill('SIGKILL')
      await new Promise((resolve) => supervisor.once('exit', resolve))
    }
    expect(sweepDeadRunDirs(base)).toContain(dir)
  })

  it("keeps a dead owner's directory while a VM in it is still being made by a live creator", () => {
    const dir = dirOwnedBy('making-vm', { pid: deadPid(), writtenAt: new Date().toISOString() })
    mkdirSync(join(dir, 'vms', 'vm-b'), { recursive: true, mode: 0o700 })
    writeFileSync(
      join(dir, 'vms', 'vm-b', 'creator.json'),
      JSON.stringify({ creatorPid: process.pid, createdAt: new Date(Date.now() - 1000).toISOString() }),
    )
    expect(sweepDeadRunDirs(base)).not.toContain(dir)
    writeFileSync(
      join(dir, 'vms', 'vm-b', 'creator.json'),
      JSON.stringify({ creatorPid: deadPid(), createdAt: new Date().toISOString() }),
    )
    expect(sweepDeadRunDirs(base)).toContain(dir)
  })

  it('leaves a directory without an owner file while it is young, sweeps it once old', () => {
    const unowned = dirOwnedBy('unowned', undefined)
    expect(sweepDeadRunDirs(base)).not.toContain(unowned)
    const old = new Date(Date.now() - 60 * 60_000)
    utimesSync(unowned, old, old)
    expect(sweepDeadRunDirs(base)).toContain(unowned)
  })

  it('touches nothing but vmctl-run-* directories', () => {
    const other = join(base, 'something-else')
    mkdirSync(other)
    sweepDeadRunDirs(base)
    expect(existsSync(other)).toBe(true)
  })
})
