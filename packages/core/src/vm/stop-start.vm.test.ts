import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { which } from '../host/qemu-locator.js'
import { cacheDir, listVms, VM, VmctlError, VmExitedError, VmStoppedError } from '../index.js'
import { foreignImage } from '../test-support/test-images.js'
import { eventually, qemuPidsOf, vmDirectoryExists } from '../test-support/vm-processes.js'

const CLI = fileURLToPath(new URL('../../../cli/dist/main.js', import.meta.url))
const STOPPED_CREATOR = fileURLToPath(new URL('../../test/fixtures/stopped-creator.mjs', import.meta.url))

function vmctl(...args: string[]): string {
  return execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8' })
}

function stateOf(name: string): string | undefined {
  return listVms().find((v) => v.directory.name === name)?.status?.state
}

/** The boot's identity in the guest: changes with every boot, kept by nothing else. */
async function bootId(vm: VM): Promise<string> {
  return (await vm.exec('cat /proc/sys/kernel/random/boot_id')).stdout.trim()
}

describe('vm: stop, start and restart an image-mode VM', () => {
  let vm: VM
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
  })

  test('stop powers the guest off cleanly and keeps the VM; start boots it from the same disk', async () => {
    const port = vm.forwardedPort(8080)
    const firstBoot = await bootId(vm)
    // Not synced by the test: stop() must get it onto the disk.
    await vm.exec('echo kept > /root/kept')
    const stopped = await vm.stop()
    expect(stopped).toEqual({ forced: false, how: 'the guest powered off' })
    expect(vm.state).toBe('stopped')
    expect(stateOf(vm.name)).toBe('stopped')
    expect(qemuPidsOf(vm.name)).toEqual([])
    expect(vmDirectoryExists(vm.name)).toBe(true)

    const call = await vm.exec('true').catch((e: unknown) => e)
    expect(call).toBeInstanceOf(VmStoppedError)
    expect(String(call)).toContain(`VM ${vm.name} is stopped: only start() and destroy() work`)
    expect(await vm.stop()).toEqual({ forced: false, how: 'it was already stopped' })

    await vm.start()
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
    expect(vmctl('stop', vm.name)).toBe(`${vm.name} stopped (the guest powered off)\n`)
    expect(vmctl('ps')).toMatch(new RegExp(`${vm.name}\\s+stopped`))
    await eventually(() => vm.state === 'stopped', 5_000, 'the handle saw the stop')
    expect(vmctl('stop', vm.name)).toBe(`${vm.name} stopped (it was already stopped)\n`)
    expect(vmctl('start', vm.name)).toBe(`${vm.name} ready\n`)
    await eventually(() => vm.state === 'ready', 5_000, 'the handle saw the start')
    expect((await vm.exec('cat /root/kept')).stdout).toBe('kept\n')
  })

  test('restart reboots the guest; a hard restart resets it; what was synced survives both', async () => {
    const before = await bootId(vm)
    await vm.exec('echo soft > /root/soft')
    await vm.restart()
    const afterSoft = await bootId(vm)
    expect(afterSoft).not.toBe(before)
    expect((await vm.exec('cat /root/soft')).stdout).toBe('soft\n')
    await vm.exec('echo hard > /root/hard && sync')
    await vm.restart({ hard: true })
    expect(await bootId(vm)).not.toBe(afterSoft)
    expect((await vm.exec('cat /root/hard /root/kept')).stdout).toBe('hard\nkept\n')
  })
})

describe('vm: stop and start in kernel mode', () => {
  test('a started kernel-mode VM sees the host root afresh: what the guest wrote is gone', async () => {
    await using vm = await VM.up()
    await vm.exec('echo guest > /tmp/vmctl-stop-start-written && echo x > /etc/vmctl-stop-start')
    await vm.stop()
    await vm.start()
    const r = await vm.exec('ls /tmp/vmctl-stop-start-written /etc/vmctl-stop-start', { reject: false })
    expect(r.exitCode).not.toBe(0)
    expect((await vm.exec('cat /etc/os-release')).stdout).toMatch(/PRETTY_NAME/)
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
