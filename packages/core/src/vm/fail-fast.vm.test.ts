import { execFileSync } from 'node:child_process'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { guestHelperPaths } from '@vmctl/agent'
import { afterAll, describe, expect, test } from 'vitest'
import { BootFailedError, cacheDir, VM, type VmOptions } from '../index.js'
import { runtimeDir } from '../paths.js'
import { eventually, qemuPidsOf, vmDirectoryExists } from '../test-support/vm-processes.js'
import { pollUntil } from '../util/timing.js'

/**
 * Boots that cannot succeed end within seconds with the guest's own words (its init's
 * `vmctl-init: fatal:` line), not after the 180 s TCG boot timeout. Broken runtime disks are made
 * here and handed to VM.up() through VMCTL_TEST_RUNTIME_DISK.
 */
const FAIL_FAST_MS = 30_000
const work = mkdtempSync(join(tmpdir(), 'vmctl-fail-fast-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

/** An ext4 runtime disk holding the native helpers (mode `helperMode`) and `agent` as the agent. */
function runtimeDisk(name: string, helperMode: number, agent: { from?: string; script?: string }): string {
  const staging = join(work, `${name}.d`)
  mkdirSync(staging)
  for (const helper of guestHelperPaths()) {
    const target = join(staging, basename(helper))
    copyFileSync(helper, target)
    chmodSync(target, helperMode)
  }
  const executable = join(staging, 'vmctl-agent')
  if (agent.script) writeFileSync(executable, agent.script, { mode: 0o755 })
  else copyFileSync(agent.from!, executable)
  chmodSync(executable, agent.script ? 0o755 : helperMode)
  const disk = join(work, `${name}.ext4`)
  execFileSync('mkfs.ext4', [
    '-q',
    '-F',
    '-t',
    'ext4',
    '-O',
    '^has_journal',
    '-E',
    'root_owner=0:0',
    '-d',
    staging,
    disk,
    '8M',
  ])
  return disk
}

async function failingBoot(
  name: string,
  options: VmOptions,
  disk?: string,
): Promise<{ error: BootFailedError; ms: number }> {
  const vmName = `${name}-${process.pid}`
  if (disk) process.env.VMCTL_TEST_RUNTIME_DISK = disk
  const started = Date.now()
  // A boot timeout well inside the test's: a missed failure shows as one, with its console tail.
  const error = await VM.up({ bootTimeoutMs: 90_000, ...options, name: vmName })
    .then(async (vm) => {
      await vm.destroy()
      return new Error('the VM booted')
    })
    .catch((e: unknown) => e)
    .finally(() => delete process.env.VMCTL_TEST_RUNTIME_DISK)
  const ms = Date.now() - started
  console.log(`${name}: failed after ${ms} ms: ${String(error).split('\n')[0]}`)
  expect(error, String(error)).toBeInstanceOf(BootFailedError)
  expect(ms).toBeLessThan(FAIL_FAST_MS)
  await eventually(
    () => qemuPidsOf(vmName).length === 0 && !vmDirectoryExists(vmName),
    5_000,
    'QEMU and VM directory gone',
  )
  return { error: error as BootFailedError, ms }
}

describe('vm: a boot that cannot succeed fails fast with the cause', () => {
  test('native helpers without their execute bit (a packer that drops modes)', async () => {
    const disk = runtimeDisk('no-exec', 0o644, { from: guestHelperPaths()[0] })
    const { error } = await failingBoot('no-exec', {}, disk)
    expect(error.message).toMatch(/init gave up: \/vmctl\/guest-setup on the runtime disk is not executable/)
    expect(error.message).toMatch(/delete the cached runtime disks/)
    expect(error.consoleTail).toContain('vmctl-init: fatal:')
  })

  test('an agent that exits at once, again and again, before it ever answered', async () => {
    const disk = runtimeDisk('agent-exits', 0o755, {
      script: '#!/bin/busybox sh\necho "vmctl-agent: cannot load its bundle (simulated)" >&2\nexit 1\n',
    })
    const { error } = await failingBoot('agent-exits', {}, disk)
    expect(error.message).toMatch(
      /the guest agent exited 3 times \(last exit status 1\) before it ever answered/,
    )
    expect(error.consoleTail).toContain('cannot load its bundle (simulated)')
  })

  test('a runtime disk that is not a filesystem', async () => {
    const disk = join(work, 'garbage.ext4')
    writeFileSync(disk, Buffer.alloc(4 * 1024 * 1024, 0x5a))
    const { error } = await failingBoot('rt-garbage', {}, disk)
    expect(error.message).toMatch(/cannot mount vmctl's runtime disk \/dev\/vd\w+ \(ext4, read-only\)/)
    expect(error.message).toContain(`Fix: delete the cached runtime disks in ${cacheDir()}/runtime`)
  })

  test('a kernel argument that hides the runtime disk', async () => {
    const { error } = await failingBoot('rt-serial', { kernelArgs: ['vmctl_runtime_serial=nope'] })
    expect(error.message).toMatch(
      /no disk has the serial 'nope' of vmctl's runtime disk \(disks: vd\w+:'vmctl-runtime'/,
    )
    expect(error.message).toMatch(/do not set vmctl_runtime_serial/)
  })

  test('a supervisor killed mid-boot: the error says so, with what it logged, and nothing is left', async () => {
    const name = `sup-killed-${process.pid}`
    const status = join(runtimeDir(), 'vms', name, 'status.json')
    // Its steps in its log (this process has loaded its own log quiet); a cold boot, so that it is
    // still booting well after its QEMU started and the caller attached, with KVM too.
    process.env.DEBUG = 'vmctl:supervisor'
    process.env.VMCTL_TEMPLATES = '0'
    const booting = VM.up({ name }).catch((e: unknown) => e)
    const pid = await pollUntil(
      () => {
        const read = existsSync(status) ? JSON.parse(readFileSync(status, 'utf8')) : undefined
        return read?.qemuPid ? read.pid : undefined
      },
      { timeoutMs: 30_000, everyMs: 5 },
    )
    delete process.env.DEBUG
    delete process.env.VMCTL_TEMPLATES
    await new Promise((resolve) => setTimeout(resolve, 300))
    process.kill(pid, 'SIGKILL')
    const error = await booting
    expect(error, String(error)).toBeInstanceOf(BootFailedError)
    expect((error as Error).message).toMatch(
      /exited during boot without a word \(pid \d+: killed, or crashed\); its log ends:/,
    )
    expect((error as Error).message).toMatch(/supervisor running \d+ ms after its process started/)
    await eventually(
      () => qemuPidsOf(name).length === 0 && !vmDirectoryExists(name),
      5_000,
      'QEMU and VM directory gone',
    )
  })
})
