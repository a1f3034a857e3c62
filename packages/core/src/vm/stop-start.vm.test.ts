import { execFile, spawn } from 'node:child_process'
import { existsSync, mkdirSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { which } from '../host/qemu-locator.js'
import {
  cacheDir,
  listVms,
  observeHost,
  VM,
  VmctlError,
  VmDisk,
  VmExitedError,
  VmStoppedError,
} from '../index.js'
import { coldBootsTimeout } from '../test-support/cold-boots.js'
import { foreignImage } from '../test-support/test-images.js'
import { eventually, qemuPidsOf, vmDirectoryExists } from '../test-support/vm-processes.js'

const execFileAsync = promisify(execFile)
const CLI = fileURLToPath(new URL('../../../cli/dist/main.js', import.meta.url))
const STOPPED_CREATOR = fileURLToPath(new URL('../../test/fixtures/stopped-creator.mjs', import.meta.url))

/** Runs `work` and prints how long it took: the figures docs/vm-lifecycle.md quotes come from here. */
async function timed<T>(what: string, work: () => Promise<T>): Promise<T> {
  const started = performance.now()
  const result = await work()
  console.log(`${what}: ${Math.round(performance.now() - started)} ms`)
  return result
}

/**
 * The CLI in a child process, awaited: a synchronous run blocked this worker for as long as
 * `vmctl start` booted (that test took 131 s once under load), and vitest failed the run on its worker's
 * unanswered RPC ("Timeout calling onTaskUpdate") though every test passed.
 */
async function vmctl(...args: string[]): Promise<string> {
  return (await execFileAsync(process.execPath, [CLI, ...args], { encoding: 'utf8' })).stdout
}

function stateOf(name: string): string | undefined {
  return listVms().find((v) => v.directory.name === name)?.status?.state
}

/** The boot's identity in the guest: changes with every boot, kept by nothing else. */
async function bootId(vm: VM): Promise<string> {
  return (await vm.exec('cat /proc/sys/kernel/random/boot_id')).stdout.trim()
}

/** What the guest reads from the start of the disk with `serial`, through its by-id path. */
async function diskText(vm: VM, serial: string, bytes: number): Promise<string> {
  return (await vm.exec(`head -c ${bytes} /dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_${serial}`)).stdout
}

describe('vm: stop, start and restart an image-mode VM', () => {
  let vm: VM
  let disk: VmDisk | undefined
  beforeAll(async () => {
    // The busybox image of images.vm.test.ts: small, made once, its template reused.
    const image = join(cacheDir(), 'test-images', 'foreign.raw')
    if (!existsSync(image)) {
      mkdirSync(join(cacheDir(), 'test-images'), { recursive: true })
      await foreignImage(`${image}.partial`, which('busybox', '/bin:/usr/bin')!)
      renameSync(`${image}.partial`, image)
    }
    vm = await VM.up({ image, ports: [8080] })
  })
  afterAll(async () => {
    await vm?.destroy()
    await disk?.delete()
  })

  test('stop powers the guest off cleanly and keeps the VM; start boots it from the same disk', async () => {
    const port = vm.forwardedPort(8080)
    const firstBoot = await bootId(vm)
    // Not synced by the test: stop() must get it onto the disk.
    await vm.exec('echo kept > /root/kept')
    const stopped = await timed('image mode: stop', () => vm.stop())
    expect(stopped).toEqual({ forced: false, how: 'the guest powered off' })
    expect(vm.state).toBe('stopped')
    expect(stateOf(vm.name)).toBe('stopped')
    expect(qemuPidsOf(vm.name)).toEqual([])
    expect(vmDirectoryExists(vm.name)).toBe(true)

    const call = await vm.exec('true').catch((e: unknown) => e)
    expect(call).toBeInstanceOf(VmStoppedError)
    expect(String(call)).toContain(`VM ${vm.name} is stopped: only start() and destroy() work`)
    expect(await vm.stop()).toEqual({ forced: false, how: 'it was already stopped' })

    await timed('image mode: start (cold boot)', () => vm.start())
    expect(vm.state).toBe('ready')
    expect((await vm.exec('cat /root/kept')).stdout).toBe('kept\n')
    expect(await bootId(vm)).not.toBe(firstBoot)
    expect(vm.forwardedPort(8080)).toBe(port)
    expect(stateOf(vm.name)).toBe('ready')
    const again = await vm.start().catch((e: unknown) => e)
    expect(again).toBeInstanceOf(VmctlError)
    expect(String(again)).toMatch(
      /start of VM \S+ failed: the VM is already running; start\(\) boots a stopped VM/,
    )
  })

  test('vmctl stop and start from another process; this handle follows', async () => {
    expect(await vmctl('stop', vm.name)).toBe(`${vm.name} stopped (the guest powered off)\n`)
    expect(await vmctl('ps')).toMatch(new RegExp(`${vm.name}\\s+stopped`))
    await eventually(() => vm.state === 'stopped', 5_000, 'the handle saw the stop')
    expect(await vmctl('stop', vm.name)).toBe(`${vm.name} stopped (it was already stopped)\n`)
    expect(await vmctl('start', vm.name)).toBe(`${vm.name} ready\n`)
    await eventually(() => vm.state === 'ready', 5_000, 'the handle saw the start')
    expect((await vm.exec('cat /root/kept')).stdout).toBe('kept\n')
  })

  test(
    'restart reboots the guest; a hard restart resets it; what was synced, and plugged disks, survive both',
    async () => {
      disk = await VmDisk.create({ sizeMiB: 8 })
      const { byIdPath } = await vm.attachDisk(disk, { serial: 'kept-disk' })
      await vm.exec(`printf plugged > ${byIdPath} && sync`)
      const before = await bootId(vm)
      await vm.exec('echo soft > /root/soft')
      await timed('image mode: restart', () => vm.restart())
      const afterSoft = await bootId(vm)
      expect(afterSoft).not.toBe(before)
      expect((await vm.exec('cat /root/soft')).stdout).toBe('soft\n')
      // The new QEMU has the disk again, at the same by-id path, when restart() resolves.
      expect(await diskText(vm, 'kept-disk', 7)).toBe('plugged')
      await vm.exec('echo hard > /root/hard && sync')
      await timed('image mode: restart --hard', () => vm.restart({ hard: true }))
      expect(await bootId(vm)).not.toBe(afterSoft)
      expect((await vm.exec('cat /root/hard /root/kept')).stdout).toBe('hard\nkept\n')
      expect(await diskText(vm, 'kept-disk', 7)).toBe('plugged')
      expect((await vm.disks()).map((d) => [d.path, d.serial])).toEqual([[disk.path, 'kept-disk']])
    },
    coldBootsTimeout(2),
  )

  test('QEMU killed by hand: the VM is stopped with the cause, ps flags it, start() recovers it with its disk', async () => {
    await vm.exec('echo before-kill > /root/before-kill && sync')
    const pending = vm.exec('sleep 120')
    pending.catch(() => {})
    const qemuPid = listVms().find((v) => v.directory.name === vm.name)?.status?.qemuPid
    expect(qemuPid).toBeGreaterThan(0)
    process.kill(qemuPid!, 'SIGKILL')
    const error = await pending.catch((e: unknown) => e)
    expect(error).toBeInstanceOf(VmStoppedError)
    expect(String(error)).toMatch(/its QEMU ended without vmctl asking \(QEMU was killed by SIGKILL\)/)
    expect(String(error)).toContain('Fix: await vm.start() first')
    expect(vm.state).toBe('stopped')
    expect(stateOf(vm.name)).toBe('stopped')
    expect(vmDirectoryExists(vm.name)).toBe(true)
    await expect(vm.exec('true')).rejects.toThrow(/QEMU was killed by SIGKILL/)
    const findings = observeHost().findings.filter((f) => f.vm === vm.name)
    expect(findings.map((f) => f.kind)).toEqual(['stopped-unexpectedly'])
    expect(findings[0]!.detail).toContain('QEMU was killed by SIGKILL')
    expect(await vmctl('ps')).toMatch(new RegExp(`${vm.name}\\s+stopped\\s.*stopped-unexpectedly`))
    // The disk stays the VM's while it is stopped, to be plugged in again by start().
    expect((await vm.disks()).map((d) => d.serial)).toEqual(['kept-disk'])

    await timed('image mode: start after QEMU was killed (cold boot)', () => vm.start())
    expect(vm.state).toBe('ready')
    expect((await vm.exec('cat /root/before-kill /root/kept')).stdout).toBe('before-kill\nkept\n')
    expect(await diskText(vm, 'kept-disk', 7)).toBe('plugged')
    expect(observeHost().findings.filter((f) => f.vm === vm.name)).toEqual([])

    // A stopped VM's disk can be taken off: the next start does not plug it in.
    await vm.stop()
    await vm.detachDisk(disk!)
    expect(await vm.disks()).toEqual([])
  })
})

describe('vm: stop and start in kernel mode', () => {
  test('a started kernel-mode VM sees the host root afresh: what the guest wrote is gone', async () => {
    await using vm = await VM.up()
    await vm.exec('echo guest > /tmp/vmctl-stop-start-written && echo x > /etc/vmctl-stop-start')
    await timed('kernel mode: stop', () => vm.stop())
    await timed('kernel mode: start (template clone)', () => vm.start())
    const r = await vm.exec('ls /tmp/vmctl-stop-start-written /etc/vmctl-stop-start', { reject: false })
    expect(r.exitCode).not.toBe(0)
    expect((await vm.exec('cat /etc/os-release')).stdout).toMatch(/PRETTY_NAME/)

    // The guest panicking, then powering itself off: each leaves the VM stopped with its own cause
    // (the first panic's line, still in the console, is not taken for the power-off's).
    await vm.exec('echo c > /proc/sysrq-trigger').catch(() => {})
    await eventually(() => vm.state === 'stopped', 30_000, 'the panic seen')
    const panicked = await vm.exec('true').catch((e: unknown) => e)
    expect(panicked).toBeInstanceOf(VmStoppedError)
    expect(String(panicked)).toMatch(/without vmctl asking \(the guest kernel panicked/)
    // The last console lines: the panic and its stack dump (which follows the panic line). A dump
    // longer than the tail leaves only its end: the frames, </TASK>, "Kernel Offset" (seen once
    // in 7 runs under load: the tail all "? frame" guesses and registers).
    expect((panicked as VmStoppedError).consoleTail).toMatch(
      /Kernel panic|Call Trace|do_syscall|<\/TASK>|Kernel Offset/,
    )
    await vm.start()
    await vm.exec('echo o > /proc/sysrq-trigger').catch(() => {})
    await eventually(() => vm.state === 'stopped', 30_000, 'the power-off seen')
    const off = await vm.exec('true').catch((e: unknown) => e)
    expect((off as VmStoppedError).stopCause).toBe('the guest shut down or rebooted (QEMU exited)')
  })

  test('a destroyed VM rejects every call, stop and start included, saying it is gone', async () => {
    const vm = await VM.up()
    await vm.destroy()
    for (const call of [() => vm.exec('true'), () => vm.stop(), () => vm.start(), () => vm.restart()]) {
      const error = await call().catch((e: unknown) => e)
      expect(error).toBeInstanceOf(VmExitedError)
      expect(String(error)).toMatch(/is gone: (it was )?destroyed/)
    }
    expect(vm.state).toBe('exited')
  })

  test('a stopped VM goes with the process that created it (SIGKILL)', async () => {
    const child = spawn(process.execPath, [STOPPED_CREATOR], { stdio: ['ignore', 'pipe', 'inherit'] })
    let output = ''
    const name = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        const match = output.match(/ready (\S+)/)
        if (match) resolve(match[1]!)
      })
      child.on('exit', (code) => reject(new Error(`creator exited (${code}): ${output}`)))
    })
    expect(stateOf(name)).toBe('stopped')
    child.kill('SIGKILL')
    await eventually(
      () => qemuPidsOf(name).length === 0 && !vmDirectoryExists(name),
      5_000,
      'the stopped VM torn down',
    )
  })
})
