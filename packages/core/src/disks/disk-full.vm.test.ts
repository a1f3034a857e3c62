import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { HostDiskFullError } from '../errors.js'
import { gcHost } from '../observer/host-gc.js'
import { observeHost } from '../observer/host-observer.js'
import { VmDirectory } from '../supervisor/vm-directory.js'
import { canMount, fillUp, mountTmpfs, unmountAll } from '../test-support/small-filesystems.js'
import { TEST_IMAGE } from '../test-support/test-images.js'
import { pollUntil } from '../util/timing.js'
import { VM } from '../vm/vm.js'
import { VmDisk } from './vm-disk.js'

/**
 * A guest writes more into a disk than the host's filesystem under its file can hold. QEMU pauses
 * such a guest; what the user meets is an error naming the file and the fix on the call that was
 * waiting and on every call after it, not a timeout, and the VM going on by itself once there is
 * room, the write retried. The disk's filesystem is a small tmpfs, so this needs root (CI runs as
 * root; elsewhere the file is skipped, and says so).
 */
let scratch: string
beforeAll(() => {
  if (!canMount) return
  scratch = mkdtempSync(join(tmpdir(), 'vmctl-disk-full-'))
})
afterAll(() => {
  unmountAll()
  if (scratch) rmSync(scratch, { recursive: true, force: true })
})

describe.skipIf(!canMount)(
  'a disk whose host filesystem fills up (vm; root, to mount a small filesystem)',
  () => {
    test('the waiting call and later ones fail with the file and the fix; the VM resumes once there is room', async () => {
      const small = join(scratch, 'small')
      mountTmpfs(small, 64)
      const filler = join(small, 'filler')
      fillUp(filler, 40) // ~24 MiB left for the disk; 40 free once the filler goes
      await using vm = await VM.up()
      await using disk = await VmDisk.create({ path: join(small, 'data.qcow2'), sizeMiB: 256 })
      const { devicePath } = await vm.attachDisk(disk, { serial: 'data' })
      // 40 MiB of a pattern the guest can check afterwards (zeros would read back from a hole too).
      await vm.exec('yes vmctl-disk-full | head -c 41943040 > /tmp/pattern')

      const started = performance.now()
      const write = await vm
        .exec(`dd if=/tmp/pattern of=${devicePath} bs=1M oflag=direct`, { timeoutMs: 120_000 })
        .catch((e: unknown) => e)
      const failedAfterMs = performance.now() - started
      expect(write).toBeInstanceOf(HostDiskFullError)
      const error = write as HostDiskFullError
      expect(error.code).toBe('HOST_DISK_FULL')
      expect(error.directory).toBe(small)
      expect(error.message).toContain(join(small, 'data.qcow2'))
      expect(error.message).toMatch(/goes on by itself once 32 MiB are free/)
      expect(failedAfterMs).toBeLessThan(60_000) // the cause, not the call's 120 s timeout

      // While paused, every call fails at once with the same cause, in this process and in another's
      // handle on the VM (which learns it from the supervisor's status).
      await expect(vm.exec('true')).rejects.toThrow(/no space left on the filesystem of/)
      await expect(vm.readFile('/etc/hostname')).rejects.toBeInstanceOf(HostDiskFullError)
      await expect(vm.snapshot('paused')).rejects.toBeInstanceOf(HostDiskFullError)
      const attached = await VM.attach(vm.name)
      await expect(attached.exec('true')).rejects.toBeInstanceOf(HostDiskFullError)
      // `vmctl ps` flags it, and `vmctl gc` leaves it alone (it is the user's, and it goes on).
      const finding = observeHost().findings.find((f) => f.vm === vm.name)
      expect(finding).toMatchObject({ kind: 'paused-disk-full', path: join(small, 'data.qcow2') })
      expect((await gcHost({ dryRun: true })).filter((a) => a.finding.vm === vm.name)).toEqual([])

      // Room again: the guest goes on by itself. The call that failed was cancelled, so its dd ends;
      // the disk takes writes again, and reads back what they wrote.
      rmSync(filler)
      const resumed = await pollUntil(() => vm.exec('true').then(() => true), {
        timeoutMs: 20_000,
        everyMs: 250,
      })
      expect(resumed).toBe(true)
      await vm.exec('while pidof dd > /dev/null; do sleep 0.1; done')
      const check = await vm.exec(
        `dd if=/tmp/pattern of=${devicePath} bs=1M count=8 oflag=direct 2>/dev/null && cmp -n 8388608 /tmp/pattern ${devicePath}`,
        { reject: false },
      )
      expect(check.exitCode).toBe(0)
      expect((await attached.exec('true')).exitCode).toBe(0)
      await vm.detachDisk(disk)
    })

    test("an image-mode VM's own disk, in a full runtime directory: the same error, naming the overlay", async () => {
      const runtime = join(scratch, 'runtime')
      mountTmpfs(runtime, 64)
      const saved = process.env.VMCTL_RUNTIME_DIR
      process.env.VMCTL_RUNTIME_DIR = runtime
      try {
        await using vm = await VM.up({ image: TEST_IMAGE })
        fillUp(join(runtime, 'filler'), 48) // what is left is less than the guest writes below
        const overlay = join(new VmDirectory(vm.name).path, 'disk.qcow2')
        const write = await vm
          .exec('head -c 41943040 /dev/urandom > /root/big && sync', { timeoutMs: 120_000 })
          .catch((e: unknown) => e)
        expect(write).toBeInstanceOf(HostDiskFullError)
        expect((write as HostDiskFullError).directory).toBe(dirname(overlay))
        expect((write as Error).message).toContain(overlay)
      } finally {
        if (saved === undefined) delete process.env.VMCTL_RUNTIME_DIR
        else process.env.VMCTL_RUNTIME_DIR = saved
      }
    })
  },
)
