import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, lstatSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'
import { listVms, VM } from '../index.js'
import { vmsDir } from '../paths.js'
import { readLaunchSpec } from '../read-launch-spec.js'
import type { VmStatus } from '../supervisor/control-protocol.js'
import { isAlive } from '../supervisor/vm-directory.js'
import { pollUntil } from '../util/timing.js'
import { releaseSpareVm } from './spare-vm.js'

const keeper = fileURLToPath(new URL('../../test/fixtures/spare-keeper.mjs', import.meta.url))
const children: ChildProcess[] = []
afterAll(() => {
  for (const child of children) child.kill('SIGKILL')
})

/** The default VM with a forwarded port, keeping a spare (the default's template). */
const definition = { ports: [8080], keepSpare: true }
const uniqueName = (what: string) => `${what}-${randomBytes(3).toString('hex')}`

/** This process's spare (other test files may have theirs). */
function spareStatus(): VmStatus | undefined {
  return listVms().find(
    (vm) =>
      vm.status?.spare !== undefined && readLaunchSpec(vm.directory.launchFile)?.creatorPid === process.pid,
  )?.status
}

/** Neither the VM's directory nor a link under its former name, nor its processes, are left. */
async function goneWithin(ms: number, names: string[], pids: Array<number | undefined>): Promise<boolean> {
  const gone = () =>
    names.every((name) => !existsSync(join(vmsDir(), name)) && !isLink(join(vmsDir(), name))) &&
    pids.every((pid) => !isAlive(pid))
  return (await pollUntil(() => gone() || undefined, { timeoutMs: ms, everyMs: 50 })) === true
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink()
  } catch {
    return false
  }
}

/** The guest's wall clock in ms and the host's before and after asking (see templates.vm.test.ts). */
async function guestClockMs(vm: VM): Promise<{ guest: number; before: number; after: number }> {
  const before = Date.now()
  const { stdout } = await vm.exec(['perl', '-MTime::HiRes=time', '-e', 'printf "%.3f", time'])
  return { guest: Number(stdout) * 1000, before, after: Date.now() }
}

describe('spare VMs (vm)', () => {
  afterAll(() => releaseSpareVm())

  test('a VM that keeps a spare: the next VM.up() takes it parked and makes it its own: name, clock, ports', async () => {
    const first = await VM.up(definition)
    expect(first.fromSpare).toBeUndefined()
    // Its spare started as it got ready: restored, warmed, then paused.
    const parked = await pollUntil(() => (spareStatus()?.spare === 'parked' ? spareStatus() : undefined), {
      timeoutMs: 120_000,
      everyMs: 100,
    })
    expect(parked).toBeDefined()
    await first.destroy()
    // Its guest clock stands still while it is paused: the adoption must step it.
    await new Promise((resolve) => setTimeout(resolve, 3_000))

    const name = uniqueName('spare-taken')
    const vm = await VM.up({ ...definition, name })
    try {
      expect(vm.name).toBe(name)
      expect(vm.fromSpare).toBe(parked!.name)
      const clock = await guestClockMs(vm)
      expect(clock.guest).toBeGreaterThan(clock.before - 1000)
      expect(clock.guest).toBeLessThan(clock.after + 1000)
      const identity = await vm.exec(
        'hostname; cat /etc/hostname; grep -c "127.0.1.1.*\\b$(hostname)$" /etc/hosts',
      )
      expect(identity.stdout.split('\n')).toEqual([name, name, '1', ''])
      // Listed once, under its own name; its former name is only a link to its directory.
      const listed = listVms().map((v) => v.directory.name)
      expect(listed).toContain(name)
      expect(listed).not.toContain(parked!.name)
      expect(isLink(join(vmsDir(), parked!.name))).toBe(true)
      // The spare's forwarded port is this VM's.
      const hostPort = vm.forwardedPort(8080)
      await vm.exec(
        'mkdir -p /srv/www && echo from-spare > /srv/www/i && setsid busybox httpd -p 8080 -h /srv/www',
      )
      const body = await pollUntil(
        () =>
          fetch(`http://127.0.0.1:${hostPort}/i`)
            .then((r) => (r.ok ? r.text() : undefined))
            .catch(() => undefined),
        { timeoutMs: 30_000, everyMs: 200 },
      )
      expect(body).toBe('from-spare\n')
    } finally {
      await vm.destroy()
    }
    expect(await goneWithin(10_000, [name, parked!.name], [parked!.pid, parked!.qemuPid])).toBe(true)
  }, 300_000)

  test('a spare taken while it still boots, and one let go by a VM.up() that keeps a spare of other options', async () => {
    // The last test's VM left a spare booting or parked: taken, and the next one starts at once.
    await using a = await VM.up(definition)
    const soon = uniqueName('spare-soon')
    await using b = await VM.up({ ...definition, name: soon })
    expect(a.fromSpare).toMatch(/^vm-/)
    expect(b.fromSpare).toMatch(/^vm-/)
    const identity = await b.exec('hostname; cat /etc/hostname')
    expect(identity.stdout).toBe(`${soon}\n${soon}\n`)
    // Another definition that keeps a spare lets this one go: it ends, and leaves nothing.
    const spare = await pollUntil(() => spareStatus(), { timeoutMs: 30_000, everyMs: 50 })
    expect(spare).toBeDefined()
    await using other = await VM.up({ ports: [8081], keepSpare: true })
    expect(other.fromSpare).toBeUndefined()
    expect(await goneWithin(15_000, [spare!.name], [spare!.pid, spare!.qemuPid])).toBe(true)
  }, 300_000)

  test('a parked spare ends with the process that made it, killed with SIGKILL', async () => {
    const child = spawn(process.execPath, [keeper, JSON.stringify({ ports: [8090], keepSpare: true })], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    children.push(child)
    let out = ''
    child.stdout.on('data', (chunk) => {
      out += chunk
    })
    const line = await pollUntil(() => (out.includes('\n') ? out.split('\n')[0] : undefined), {
      timeoutMs: 240_000,
      everyMs: 100,
      stopIf: () => child.exitCode !== null,
    })
    expect(line).toBeDefined()
    const spare = JSON.parse(line!) as VmStatus
    expect(isAlive(spare.qemuPid)).toBe(true)
    child.kill('SIGKILL')
    expect(await goneWithin(15_000, [spare.name], [spare.pid, spare.qemuPid])).toBe(true)
  }, 300_000)
})
