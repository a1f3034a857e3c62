import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'
import { VmDisk } from '../disks/vm-disk.js'
import { locateQemu } from '../host/qemu-locator.js'
import { vmsDir } from '../paths.js'
import { prestartDirs } from '../supervisor/prestarted-qemu.js'
import { isAlive, VmDirectory } from '../supervisor/vm-directory.js'
import { runCommand } from '../test-support/run-command.js'
import { eventually, processesWithEnv } from '../test-support/vm-processes.js'
import { pollUntil } from '../util/timing.js'
import { VM } from '../vm/vm.js'
import { gcHost } from './host-gc.js'
import { type Finding, observeHost } from './host-observer.js'

// This file's VMs, disks and template staging live in directories of its own, so the observer sees
// (and gc repairs) only what the tests made, never another run's VMs on this host.
const scratch = mkdtempSync(join(tmpdir(), 'vmctl-observer-test-'))
process.env.VMCTL_RUNTIME_DIR = join(scratch, 'run')
process.env.VMCTL_DISKS_DIR = join(scratch, 'disks')
mkdirSync(process.env.VMCTL_RUNTIME_DIR, { mode: 0o700 })
// Only the observer looks here for template staging; the VMs boot from the shared cache.
const observerEnv = { ...process.env, VMCTL_CACHE_DIR: join(scratch, 'cache') }
const coreDist = fileURLToPath(new URL('../../dist/index.js', import.meta.url))
const vms: VM[] = []

afterAll(async () => {
  for (const vm of vms) await vm.destroy().catch(() => {})
  await gcHost({ env: observerEnv })
  // A supervisor still exiting after destroy() answered resolves its directories, which makes them
  // again: a whole-suite run was left the scratch's empty run/vms and disks. It goes once none is left.
  const runDir = `VMCTL_RUNTIME_DIR=${process.env.VMCTL_RUNTIME_DIR}`
  await eventually(
    () => processesWithEnv(runDir).length === 0,
    30_000,
    () => `${processesWithEnv(runDir)} still run`,
  )
  rmSync(scratch, { recursive: true, force: true })
})

// A zombie (killed, not yet reaped by this process, whose child the hand-started QEMU is) is dead.
const alive = (pid: number) => isAlive(pid)
/** A QEMU that runs nothing (stopped, no devices), its QMP socket in `dir`: as vmctl's would be. */
const qemuByHand = (dir: string, detached = false) =>
  spawn(
    locateQemu(),
    [
      '-machine',
      'microvm',
      '-nodefaults',
      '-display',
      'none',
      '-S',
      '-qmp',
      `unix:${dir}/qmp.sock,server=on,wait=off`,
    ],
    { stdio: 'ignore', detached },
  )
const kinds = (findings: Finding[]) => findings.map((f) => `${f.kind} ${f.vm ?? f.subject}`).sort()

describe('the observer (vm)', () => {
  test('reports each inconsistency made for real, then gc repairs it and says so', async () => {
    const [deadSupervisor, lostQemu, lostDisk] = await Promise.all([
      VM.upPersistent({ name: 'obs-dead-supervisor' }),
      VM.upPersistent({ name: 'obs-lost-qemu' }),
      VM.upPersistent({ name: 'obs-lost-disk' }),
    ])
    vms.push(deadSupervisor, lostQemu, lostDisk)
    expect(observeHost(observerEnv).findings).toEqual([])

    // A supervisor SIGKILLed: its QEMU dies with it (PDEATHSIG), its directory stays.
    const dead = new VmDirectory('obs-dead-supervisor').readStatus()!
    process.kill(dead.pid, 'SIGKILL')
    await pollUntil(() => !alive(dead.pid) && !alive(dead.qemuPid!), { timeoutMs: 10_000, everyMs: 50 })

    // A supervisor that cannot act (stopped) whose QEMU was killed.
    const lost = new VmDirectory('obs-lost-qemu').readStatus()!
    process.kill(lost.pid, 'SIGSTOP')
    process.kill(lost.qemuPid!, 'SIGKILL')
    await pollUntil(() => !alive(lost.qemuPid!), { timeoutMs: 10_000, everyMs: 50 })

    // A plugged disk whose file was deleted.
    const plugged = await VmDisk.create({ sizeMiB: 8 })
    await lostDisk.attachDisk(plugged)
    rmSync(plugged.path)

    // A QEMU started by hand in a VM directory of vmctl's, with no supervisor.
    const handDir = join(vmsDir(), 'obs-by-hand')
    mkdirSync(handDir, { mode: 0o700 })
    const hand = qemuByHand(handDir, true)
    hand.unref()
    await pollUntil(() => existsSync(join(handDir, 'qmp.sock')), { timeoutMs: 10_000, everyMs: 20 })

    // QEMUs a spare supervisor starts for the next VM (prestarted-qemu.ts): one whose spare is gone
    // (its exit hook never ran) is out of place; one whose spare (here, this process) waits is not.
    const spareQemu = (id: string, owner: number) => {
      const dir = join(prestartDirs(process.env.VMCTL_RUNTIME_DIR!), id)
      mkdirSync(dir, { recursive: true, mode: 0o700 })
      writeFileSync(join(dir, 'owner'), String(owner))
      return { dir, qemu: qemuByHand(dir) }
    }
    const spareGone = spareQemu('spare-gone', spawnSync('true').pid!)
    const spareWaiting = spareQemu('spare-waiting', process.pid)
    await pollUntil(() => [spareGone, spareWaiting].every(({ dir }) => existsSync(join(dir, 'qmp.sock'))), {
      timeoutMs: 10_000,
      everyMs: 20,
    })

    // A throwaway disk whose process was SIGKILLed (no exit hook ran).
    const child = await runCommand(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { VmDisk } from ${JSON.stringify(coreDist)}
         const disk = await VmDisk.create({ name: 'orphan', sizeMiB: 8 })
         process.kill(process.pid, 'SIGKILL')`,
      ],
      { allowFailure: true },
    )
    expect(child.signal, child.stderr).toBe('SIGKILL')
    expect(existsSync(join(process.env.VMCTL_DISKS_DIR!, 'orphan.qcow2'))).toBe(true)

    // Template staging of a maker that died (a process that has exited).
    const gonePid = spawnSync('true').pid!
    const staging = join(observerEnv.VMCTL_CACHE_DIR, 'templates', `0123abcd.${gonePid}.staging`)
    mkdirSync(staging, { recursive: true })

    const { findings, vms: listed } = observeHost(observerEnv)
    expect(kinds(findings)).toEqual(
      [
        'dead-supervisor obs-dead-supervisor',
        'missing-disk obs-lost-disk',
        'qemu-without-supervisor obs-by-hand',
        'qemu-without-supervisor spare-gone',
        'supervisor-without-qemu obs-lost-qemu',
        `template-staging ${staging}`,
        `unreferenced-disk ${join(process.env.VMCTL_DISKS_DIR!, 'orphan.qcow2')}`,
      ].sort(),
    )
    expect(listed.find((vm) => vm.name === 'obs-dead-supervisor')?.state).toBe('dead')
    expect(listed.find((vm) => vm.name === 'obs-lost-qemu')).toMatchObject({
      qemuAlive: false,
      supervisorAlive: true,
    })
    expect(VM.list().map((vm) => vm.name)).toContain('obs-lost-disk')
    // Reporting changes nothing.
    expect(existsSync(new VmDirectory('obs-dead-supervisor').path)).toBe(true)

    const dry = await gcHost({ dryRun: true, env: observerEnv })
    expect(dry.every((a) => !a.done)).toBe(true)
    expect(dry).toHaveLength(7)

    const actions = await gcHost({ env: observerEnv })
    expect(actions.filter((a) => !a.done)).toEqual([])
    expect(actions.map((a) => a.action).join('\n')).toMatch(/kill QEMU pid \d+/)
    expect(observeHost(observerEnv).findings).toEqual([])
    expect(alive(hand.pid!)).toBe(false)
    expect(alive(spareGone.qemu.pid!)).toBe(false)
    expect(existsSync(spareGone.dir)).toBe(false)
    expect(alive(spareWaiting.qemu.pid!)).toBe(true)
    spareWaiting.qemu.kill('SIGKILL')
    rmSync(spareWaiting.dir, { recursive: true, force: true })
    expect(alive(lost.pid)).toBe(false)
    expect(existsSync(staging)).toBe(false)
    expect(await lostDisk.disks()).toEqual([])
    // The healthy VM is untouched and works.
    expect((await lostDisk.exec('echo ok')).stdout).toBe('ok\n')
    expect(VM.list().map((vm) => vm.name)).toEqual(['obs-lost-disk'])
  })
})
