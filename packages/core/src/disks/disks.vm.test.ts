import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { VM } from '../vm/vm.js'
import { DiskError } from './disk-error.js'
import { VmDisk } from './vm-disk.js'

// One VM for the file (kernel mode, from the template), a second one booted only for the tests
// that need two. Disks live in a directory of this file's own.
const scratch = mkdtempSync(join(tmpdir(), 'vmctl-disks-test-'))
process.env.VMCTL_DISKS_DIR = join(scratch, 'disks')
let vm: VM

beforeAll(async () => {
  vm = await VM.up()
})
afterAll(async () => {
  await vm?.destroy()
  rmSync(scratch, { recursive: true, force: true })
})

async function code(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(DiskError)
    return (error as DiskError).code
  }
  throw new Error('expected a DiskError')
}

describe('hot-plugged disks (vm)', () => {
  test('attach resolves when the guest sees it; data survives detach and attach to another VM', async () => {
    await using disk = await VmDisk.create({ sizeMiB: 64 })
    const attached = await vm.attachDisk(disk, { serial: 'data1' })
    expect(attached.byIdPath).toBe('/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_data1')
    expect(attached.devicePath).toMatch(/^\/dev\/sd[a-z]+$/)
    expect(attached.sizeBytes).toBe(64 * 1024 * 1024)
    // Seen by the guest at once: no wait between the attach and the first command.
    const r = await vm.exec(`readlink -f ${attached.byIdPath}; cat /sys/block/${attached.name}/ro`)
    expect(r.stdout).toBe(`${attached.devicePath}\n0\n`)
    await vm.exec(
      `mkfs.ext4 -q ${attached.byIdPath} && mkdir -p /mnt/d && mount ${attached.byIdPath} /mnt/d && echo kept > /mnt/d/f`,
    )

    // Mounted: refused, with the mount point named.
    const mounted = vm.detachDisk(disk)
    await expect(mounted).rejects.toThrow(/mounted in the guest at \/mnt\/d/)
    await vm.exec('umount /mnt/d')
    await vm.detachDisk(disk)
    expect(await vm.disks()).toEqual([])
    expect((await vm.exec(`test -e ${attached.devicePath}`, { reject: false })).exitCode).toBe(1)
    expect((await vm.exec(`ls /dev/disk/by-id/`)).stdout).not.toContain('data1')

    const again = await vm.attachDisk(disk)
    await vm.exec(`mount ${again.byIdPath} /mnt/d`)
    expect((await vm.exec('cat /mnt/d/f')).stdout).toBe('kept\n')
    await vm.exec('umount /mnt/d')

    // Attached read-write here, so another VM may not have it; once detached, it may.
    await using other = await VM.up()
    expect(await code(other.attachDisk(disk))).toBe('DISK_IN_USE')
    await vm.detachDisk(disk)
    const there = await other.attachDisk(disk)
    expect(
      (await other.exec(`mkdir -p /mnt/d && mount ${there.byIdPath} /mnt/d && cat /mnt/d/f`)).stdout,
    ).toBe('kept\n')
    await other.exec('umount /mnt/d')
    await other.detachDisk(disk)
  })

  test('a read-only disk is read-only in the guest', async () => {
    const path = join(scratch, 'ro.raw')
    rmSync(path, { force: true }) // left by an earlier try of this test
    await (await VmDisk.create({ path, sizeMiB: 8, format: 'raw' })).path
    const attached = await vm.attachDisk(path, { readOnly: true })
    expect(attached.readOnly).toBe(true)
    expect((await vm.exec(`cat /sys/block/${attached.name}/ro`)).stdout).toBe('1\n')
    const write = await vm.exec(`dd if=/dev/zero of=${attached.devicePath} bs=4k count=1 oflag=direct`, {
      reject: false,
    })
    expect(write.exitCode).not.toBe(0)
    await vm.detachDisk(path)
  })

  test('errors name the cause: missing, corrupt, not attached, not seen in time, snapshot', async () => {
    const missing = join(scratch, 'nope.qcow2')
    const notFound = vm.attachDisk(missing)
    await expect(notFound).rejects.toThrow(/does not exist|no disk file/)
    expect(await code(vm.attachDisk(missing))).toBe('DISK_NOT_FOUND')

    // A qcow2 whose header says version 99.
    const corrupt = join(scratch, 'corrupt.qcow2')
    rmSync(corrupt, { force: true }) // left by an earlier try of this test
    await VmDisk.create({ path: corrupt, sizeMiB: 8 })
    const fd = openSync(corrupt, 'r+')
    writeSync(fd, Buffer.from([0, 0, 0, 99]), 0, 4, 4)
    closeSync(fd)
    const corruptError = vm.attachDisk(corrupt)
    await expect(corruptError).rejects.toThrow(/qcow2/)
    expect(await code(vm.attachDisk(corrupt))).toBe('DISK_CORRUPT')

    expect(await code(vm.detachDisk(join(scratch, 'never-attached.raw')))).toBe('DISK_NOT_ATTACHED')

    // A guest that cannot see SCSI disks: its virtio-scsi driver let go of the controller.
    await using disk = await VmDisk.create({ sizeMiB: 8 })
    await vm.attachDisk(disk) // loads the guest's SCSI drivers, if no test before did
    await vm.detachDisk(disk)
    const controller = (
      await vm.exec('basename "$(readlink -f /sys/class/scsi_host/host*/device/..)"')
    ).stdout.trim()
    expect(controller).toMatch(/^virtio\d+$/)
    await vm.exec(`echo ${controller} > /sys/bus/virtio/drivers/virtio_scsi/unbind`)
    try {
      const started = Date.now()
      const unseen = vm.attachDisk(disk, { timeoutMs: 3_000 })
      await expect(unseen).rejects.toThrow(/did not see .* within 3000 ms, so it was unplugged again/)
      expect(Date.now() - started).toBeLessThan(15_000)
      expect(await vm.disks()).toEqual([]) // unplugged again
    } finally {
      await vm.exec(`echo ${controller} > /sys/bus/virtio/drivers/virtio_scsi/bind`)
    }

    await vm.attachDisk(disk)
    await expect(vm.snapshot('with-disk')).rejects.toThrow(/hot-plugged disks .*detach them/)
    await vm.detachDisk(disk)
  })
})

// Shares this file's VM (a restore saved): vm.ip() and vm.info() need nothing of their own.
describe('vm.ip() (vm)', () => {
  test("ip() is the default network's address, info() lists them all, a named network is refused", async () => {
    expect(await vm.ip()).toBe('10.0.2.15')
    // Another address on the same NIC does not change which one is the default network's.
    await vm.exec('ip addr add 192.168.77.5/24 dev eth0')
    expect(await vm.ip()).toBe('10.0.2.15')
    const addresses = (await vm.info()).addresses.map((a) => a.address)
    expect(addresses).toEqual(expect.arrayContaining(['127.0.0.1', '10.0.2.15', '192.168.77.5']))
    expect(() => vm.ip('backend')).toThrow(/is not on network backend/)
    await vm.exec('ip addr del 192.168.77.5/24 dev eth0')
  })
})
