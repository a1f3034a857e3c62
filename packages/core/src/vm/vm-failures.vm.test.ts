import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import {
  BootFailedError,
  BootTimeoutError,
  InvalidOptionsError,
  KernelNotFoundError,
  listVms,
  QemuNotFoundError,
  VM,
  VmStoppedError,
} from '../index.js'
import { vmsDir } from '../paths.js'
import { eventually, qemuPidsOf, vmDirectoryExists } from '../test-support/vm-processes.js'

const made: VM[] = []
afterAll(async () => {
  await Promise.all(made.map((vm) => vm.destroy()))
})

describe('errors a user can cause, before any VM boots', () => {
  test('a missing kernel path names what was tried and the fix', async () => {
    const error = await VM.up({ kernel: '/nonexistent/vmlinuz' }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(KernelNotFoundError)
    expect((error as Error).message).toContain('/nonexistent/vmlinuz')
    expect((error as Error).message).toContain('does not exist')
    expect((error as Error).message).toMatch(/setup/)
  })

  test('a missing QEMU says how to install it', async () => {
    const path = process.env.PATH
    process.env.PATH = '/nonexistent-bin'
    try {
      const error = await VM.up().catch((e: unknown) => e)
      expect(error).toBeInstanceOf(QemuNotFoundError)
      expect((error as Error).message).toContain('apt-get install qemu-system-x86')
    } finally {
      process.env.PATH = path
    }
  })

  test('an unknown option and a wrong type are named', async () => {
    const unknown = await VM.up({ memroy: 512 } as never).catch((e: unknown) => e)
    expect(unknown).toBeInstanceOf(InvalidOptionsError)
    expect((unknown as Error).message).toContain('"memroy"')
    const wrongType = await VM.up({ cpus: 'two' } as never).catch((e: unknown) => e)
    expect((wrongType as Error).message).toContain('cpus must be positive integer')
  })

  test('a bad VMCTL_TEMPLATE_CACHE_MB is named, and leaves no VM directory behind', async () => {
    const entries = () => (existsSync(vmsDir()) ? readdirSync(vmsDir()) : [])
    const before = entries()
    process.env.VMCTL_TEMPLATE_CACHE_MB = 'abc'
    try {
      const error = await VM.up().catch((e: unknown) => e)
      expect((error as Error).message).toContain('VMCTL_TEMPLATE_CACHE_MB')
    } finally {
      delete process.env.VMCTL_TEMPLATE_CACHE_MB
    }
    // It was written before the check, and `vmctl ps` then showed a dead VM. Only this process's
    // count: another test file's worker may make a VM meanwhile (one did, in a parallel run).
    const ours = (name: string) => {
      try {
        return (
          JSON.parse(readFileSync(join(vmsDir(), name, 'creator.json'), 'utf8')).creatorPid === process.pid
        )
      } catch {
        return false // another creator between its mkdir and its creator.json (create() writes both)
      }
    }
    expect(entries().filter((name) => !before.includes(name) && ours(name))).toEqual([])
  })
})

describe('vm: failures during and after boot', () => {
  test('a guest kernel that panics fails the boot fast with the console tail', async () => {
    const name = `panic-${process.pid}`
    const started = Date.now()
    // An empty initramfs in place of vmctl's (QEMU takes the last -initrd): the kernel finds no init
    // and no root, and panics. (kernelArgs rdinit= is refused before the boot now.)
    const empty = join(mkdtempSync(join(tmpdir(), 'vmctl-empty-initrd-')), 'empty.cpio')
    writeFileSync(empty, '')
    const error = await VM.up({ name, qemuArgs: ['-initrd', empty], bootTimeoutMs: 120_000 })
      .catch((e: unknown) => e)
      .finally(() => rmSync(dirname(empty), { recursive: true, force: true }))
    expect(error, String(error)).toBeInstanceOf(BootFailedError)
    expect((error as Error).message).toMatch(/panicked/)
    expect((error as BootFailedError).consoleTail).toMatch(/Kernel panic/)
    expect(Date.now() - started).toBeLessThan(60_000)
    await eventually(
      () => qemuPidsOf(name).length === 0 && !vmDirectoryExists(name),
      5_000,
      'QEMU and VM directory gone',
    )
  })

  test('a boot that does not finish in time is stopped and reports the console tail', async () => {
    const name = `slow-${process.pid}`
    // A cold boot (a restore from a template can be ready within 1.5 s).
    process.env.VMCTL_TEMPLATES = '0'
    const error = await VM.up({ name, bootTimeoutMs: 1_500 })
      .catch((e: unknown) => e)
      .finally(() => delete process.env.VMCTL_TEMPLATES)
    expect(error, String(error)).toBeInstanceOf(BootTimeoutError)
    expect((error as Error).message).toMatch(/did not become ready within 2 s/)
    // A cold boot under way works all the time it has: slow, not stuck.
    expect((error as Error).message).toMatch(
      /Its QEMU used \d+\.\d s of CPU time in \d+\.\d s: the guest was working/,
    )
    expect((error as Error).message).toContain('Last console lines')
    await eventually(
      () => qemuPidsOf(name).length === 0 && !vmDirectoryExists(name),
      5_000,
      'QEMU and VM directory gone',
    )
  })

  test('a boot that waits for what never comes times out saying so, not asking for more time', async () => {
    // Paused for a debugger (-S with a gdb stub) that never attaches: the hang watch leaves a
    // debugger's stop alone, so the deadline ends it, with QEMU's CPU time next to it.
    const name = `stuck-${process.pid}`
    const dir = mkdtempSync(join(tmpdir(), 'vmctl-stuck-'))
    process.env.VMCTL_TEMPLATES = '0'
    const qemuArgs = ['-S', '-gdb', `unix:${join(dir, 'gdb.sock')},server=on,wait=off`]
    const error = await VM.up({ name, qemuArgs, bootTimeoutMs: 4_000 })
      .catch((e: unknown) => e)
      .finally(() => {
        delete process.env.VMCTL_TEMPLATES
        rmSync(dir, { recursive: true, force: true })
      })
    expect(error, String(error)).toBeInstanceOf(BootTimeoutError)
    expect((error as Error).message).toMatch(
      /Its QEMU used \d+\.\d s of CPU time in \d+\.\d s: the guest was waiting, not working \(or the host starved it of CPU\), so more time is unlikely to help/,
    )
    expect((error as Error).message).not.toContain('raise bootTimeoutMs')
    await eventually(
      () => qemuPidsOf(name).length === 0 && !vmDirectoryExists(name),
      5_000,
      'QEMU and VM directory gone',
    )
  })

  test('a call pending when QEMU dies rejects within a second, and later calls too; the VM stays, stopped', async () => {
    const vm = await VM.up()
    made.push(vm)
    const pending = vm.exec('sleep 120')
    pending.catch(() => {})
    await new Promise((r) => setTimeout(r, 500))
    const qemuPid = listVms().find((v) => v.directory.name === vm.name)?.status?.qemuPid
    expect(qemuPid).toBeGreaterThan(0)
    const killedAt = Date.now()
    execFileSync('kill', ['-9', String(qemuPid)])
    const error = await pending.catch((e: unknown) => e)
    expect(Date.now() - killedAt).toBeLessThan(1_000)
    expect(error).toBeInstanceOf(VmStoppedError)
    expect((error as Error).message).toMatch(/QEMU was killed by SIGKILL/)
    await expect(vm.exec('true')).rejects.toBeInstanceOf(VmStoppedError)
    // Still defined (stop-start.vm.test.ts starts one again); destroy removes it.
    expect(vm.state).toBe('stopped')
    expect(vmDirectoryExists(vm.name)).toBe(true)
    await vm.destroy()
    expect(vmDirectoryExists(vm.name)).toBe(false)
  })

  test('await using destroys the VM; destroy is idempotent; a destroyed VM refuses calls', async () => {
    let escaped: VM | undefined
    {
      await using vm = await VM.up()
      escaped = vm
      expect((await vm.exec('echo hi')).stdout).toBe('hi\n')
    }
    const vm = escaped!
    expect(vmDirectoryExists(vm.name)).toBe(false)
    await Promise.all([vm.destroy(), vm.destroy()])
    await vm.destroy()
    expect(vmDirectoryExists(vm.name)).toBe(false)
    expect(qemuPidsOf(vm.name)).toEqual([])
    await expect(vm.exec('true')).rejects.toThrow(/destroyed/)
  })
})
