// The workflow a VM manager's test plan lists, end to end, as one suite whose steps share the VM
// and the disk (they run in order). Each step checks the VM's state and what runs on the host.
import { existsSync } from 'node:fs'
import { type ImageBuildOptions, type ObservedVm, observeHost, VM, VmDisk } from '@vmctl/core'
import { afterAll, describe, expect, test } from 'vitest'

// The image the repository's tests build too (one cache entry): Debian bookworm with jq.
const IMAGE: ImageBuildOptions = { distribution: 'bookworm', packages: ['jq'] }

let vm: VM
let disk: VmDisk
let byId: string

/** The VM as the host sees it: the supervisor's state, whether its QEMU runs, its plugged disks. */
function onHost(name: string): ObservedVm | undefined {
  return VM.list().find((listed) => listed.name === name)
}

afterAll(async () => {
  await vm?.destroy()
  if (disk && existsSync(disk.path)) await disk.delete()
})

describe('a VM manager test plan (vm)', () => {
  test('create an image and a VM from it', async () => {
    vm = await VM.up({ image: IMAGE })
    expect(onHost(vm.name)).toMatchObject({
      state: 'ready',
      supervisorAlive: true,
      qemuAlive: true,
      disks: [],
    })
    expect((await vm.exec('. /etc/os-release && echo $VERSION_CODENAME')).stdout).toBe('bookworm\n')
    expect(await vm.ip()).toBe('10.0.2.15')
  })

  test('create a disk', async () => {
    disk = await VmDisk.create({ sizeMiB: 64 })
    expect(existsSync(disk.path)).toBe(true)
    expect(disk.format).toBe('qcow2')
  })

  test('attach it: the guest has it when attachDisk resolves', async () => {
    const attached = await vm.attachDisk(disk, { serial: 'lifecycle' })
    byId = attached.byIdPath
    expect(byId).toBe('/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_lifecycle')
    expect((await vm.exec(`test -b ${byId}`)).exitCode).toBe(0)
    expect(onHost(vm.name)?.disks.map((d) => d.path)).toEqual([disk.path])
  })

  test('write and verify', async () => {
    await vm.exec(`mkfs.ext4 -q ${byId} && mkdir -p /data && mount ${byId} /data`)
    await vm.writeFile('/data/note.txt', 'written before the detach\n')
    expect(await vm.readFile('/data/note.txt')).toBe('written before the detach\n')
    await vm.exec('umount /data')
  })

  test('detach: gone from the guest and from QEMU', async () => {
    await vm.detachDisk(disk)
    expect((await vm.exec(`test -e ${byId}`, { reject: false })).exitCode).toBe(1)
    expect(await vm.disks()).toEqual([])
    expect(onHost(vm.name)).toMatchObject({ state: 'ready', qemuAlive: true, disks: [] })
  })

  // Where stop, start and restart go (the state machine of issue 12):
  test('stop: the VM stays defined, vm.state is "stopped", its QEMU is gone', async () => {
    await vm.exec('echo kept > /root/marker')
    const ports = vm.ports
    const { forced } = await vm.stop()
    expect(forced).toBe(false)
    expect(vm.state).toBe('stopped')
    expect(onHost(vm.name)).toMatchObject({ state: 'stopped', supervisorAlive: true, qemuAlive: false })
    expect(vm.ports).toEqual(ports)
    await expect(vm.exec('true')).rejects.toThrow(/stopped/)
    // A stopped VM is not out of place: the observer flags nothing about it.
    expect(observeHost().findings.filter((f) => f.vm === vm.name)).toEqual([])
  })

  test('start: boots again from the same disk; the image-mode root kept what the guest wrote', async () => {
    await vm.start()
    expect(vm.state).toBe('ready')
    expect(onHost(vm.name)).toMatchObject({ state: 'ready', qemuAlive: true })
    expect((await vm.exec('cat /root/marker')).stdout).toBe('kept\n')
  })

  test('restart: a guest reboot, ready again with what it wrote', async () => {
    const bootId = (await vm.readFile('/proc/sys/kernel/random/boot_id')) as string
    await vm.restart()
    expect(vm.state).toBe('ready')
    expect(await vm.readFile('/proc/sys/kernel/random/boot_id')).not.toBe(bootId)
    expect((await vm.exec('cat /root/marker')).stdout).toBe('kept\n')
  })

  test('attach again: the data is there', async () => {
    await vm.attachDisk(disk, { serial: 'lifecycle' })
    await vm.exec(`mount ${byId} /data`)
    expect(await vm.readFile('/data/note.txt')).toBe('written before the detach\n')
    await vm.exec('umount /data')
  })

  test('QEMU killed by hand: the observer reports it, start() recovers the VM with its disk', async () => {
    const qemuPid = onHost(vm.name)?.status?.qemuPid
    expect(qemuPid).toBeGreaterThan(0)
    process.kill(qemuPid!, 'SIGKILL')
    await expect(vm.exec('true')).rejects.toThrow(/QEMU was killed by SIGKILL.*Fix: await vm.start\(\)/s)
    // The VM is still defined, stopped with the cause; what vmctl ps shows in its FLAGS column:
    expect(vm.state).toBe('stopped')
    expect(onHost(vm.name)).toMatchObject({
      state: 'stopped',
      supervisorAlive: true,
      qemuAlive: false,
      problems: ['stopped-unexpectedly'],
    })
    expect(observeHost().findings).toContainEqual(
      expect.objectContaining({ vm: vm.name, kind: 'stopped-unexpectedly' }),
    )
    await vm.start()
    expect(onHost(vm.name)).toMatchObject({ state: 'ready', qemuAlive: true, problems: [] })
    expect((await vm.exec('cat /root/marker')).stdout).toBe('kept\n')
    // The disk plugged in when QEMU died is plugged into the new one, at the same by-id path.
    await vm.exec(`mount ${byId} /data`)
    expect(await vm.readFile('/data/note.txt')).toBe('written before the detach\n')
    await vm.exec('umount /data')
    await vm.detachDisk(disk)
  })

  test('delete the disk', async () => {
    await disk.delete()
    expect(existsSync(disk.path)).toBe(false)
  })

  test('destroy the VM: nothing of it is left on the host', async () => {
    const name = vm.name
    await vm.destroy()
    expect(onHost(name)).toBeUndefined()
    expect(observeHost().findings.filter((f) => f.vm === name)).toEqual([])
  })
})
