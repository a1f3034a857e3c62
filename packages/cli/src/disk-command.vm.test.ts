import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'

const CLI = fileURLToPath(new URL('../dist/main.js', import.meta.url))
// Disks and VMs of this file's own, so `vmctl gc` here never sees another run's.
const scratch = mkdtempSync(join(tmpdir(), 'vmctl-disk-cli-'))
const env = {
  ...process.env,
  VMCTL_DISKS_DIR: join(scratch, 'disks'),
  VMCTL_RUNTIME_DIR: join(scratch, 'run'),
}
mkdirSync(env.VMCTL_RUNTIME_DIR, { mode: 0o700 })
const name = `disk-cli-${process.pid}`

function vmctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => {
      stdout += d
    })
    child.stderr.on('data', (d: Buffer) => {
      stderr += d
    })
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

afterAll(async () => {
  try {
    await vmctl(['down', name])
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}, 120_000)

describe('vmctl disk and gc (vm)', () => {
  // A dozen CLI processes, each a Node start-up: minutes on a busy 2-core host.
  test('create, attach, ls, detach, rm; gc finds nothing out of place', { timeout: 420_000 }, async () => {
    expect((await vmctl(['up', '--name', name])).code).toBe(0)
    const created = await vmctl(['disk', 'create', 'cli-data', '--size', '16'])
    expect(created, created.stderr).toMatchObject({
      code: 0,
      stdout: `${join(env.VMCTL_DISKS_DIR, 'cli-data.qcow2')}\n`,
    })

    const attached = await vmctl(['disk', 'attach', name, 'cli-data', '--serial', 'cli1'])
    expect(attached.code, attached.stderr).toBe(0)
    expect(attached.stdout).toMatch(
      /^\/dev\/disk\/by-id\/scsi-0QEMU_QEMU_HARDDISK_cli1 \(\/dev\/sd[a-z]+\)$/m,
    )
    const ls = await vmctl(['disk', 'ls'])
    expect(ls.stdout).toMatch(new RegExp(`^cli-data\\s+qcow2\\s+16 MiB\\s+\\S+ MB\\s+${name}\\s`, 'm'))
    // DISKS 1, NETWORKS -, FLAGS -
    expect((await vmctl(['ps'])).stdout).toMatch(new RegExp(`^${name}\\s+ready\\s.*\\s1\\s+-\\s+-$`, 'm'))

    // Deleting a plugged disk is refused; detaching what is not attached is an error.
    const rmAttached = await vmctl(['disk', 'rm', 'cli-data'])
    expect(rmAttached.code).toBe(1)
    expect(rmAttached.stderr).toContain(`attached to VM ${name}`)
    expect((await vmctl(['disk', 'detach', name, join(scratch, 'other.raw')])).stderr).toContain(
      'is not attached',
    )

    expect((await vmctl(['disk', 'detach', name, 'cli-data'])).code).toBe(0)
    expect((await vmctl(['disk', 'rm', 'cli-data'])).code).toBe(0)
    expect((await vmctl(['disk', 'ls'])).stdout.trim().split('\n')).toHaveLength(1) // the header

    expect((await vmctl(['gc', '--dry-run'])).stdout).toBe('nothing out of place\n')
  })
})
