import { expect, test } from 'vitest'
import { HostDiskFullError } from '../errors.js'
import { cacheWriteError, diskFileWriteError, isDiskFull, runtimeWriteError } from './disk-full.js'

const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
const edquot = Object.assign(new Error('EDQUOT: disk quota exceeded, write'), { code: 'EDQUOT' })
const eacces = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' })

test('no space and over quota are a full disk; anything else is not', () => {
  expect([enospc, edquot, eacces, undefined, 'x'].map(isDiskFull)).toEqual([true, true, false, false, false])
})

test("a VM directory's write names the runtime directory and VMCTL_RUNTIME_DIR", () => {
  const error = runtimeWriteError(
    enospc,
    '/run/user/1000/vmctl/vms/vm-1',
    '/run/user/1000/vmctl/vms/vm-1/launch.json',
  )
  expect(error).toBeInstanceOf(HostDiskFullError)
  expect((error as HostDiskFullError).directory).toBe('/run/user/1000/vmctl')
  expect((error as Error).message).toMatch(/VMCTL_RUNTIME_DIR/)
  expect((error as Error).cause).toBe(enospc)
  expect(runtimeWriteError(eacces, '/r/vms/vm-1', '/r/vms/vm-1/launch.json')).toBe(eacces)
})

test("a cache write names the cache directory, not the build's hidden staging one", () => {
  const error = cacheWriteError(enospc, '/home/u/.cache/vmctl/kernels/.stage-ab12/package.deb')
  expect((error as HostDiskFullError).directory).toBe('/home/u/.cache/vmctl/kernels')
  expect((error as Error).message).toMatch(/VMCTL_CACHE_DIR/)
  expect(cacheWriteError(eacces, '/c/kernels/x.deb')).toBe(eacces)
})

test("a tool's failure that said so on its stderr (qemu-img) is a full disk too", () => {
  // execa's error for `qemu-img create` on a full filesystem, as QEMU 7.2 words it.
  const qemuImg = Object.assign(new Error('Command failed with exit code 1: qemu-img create'), {
    stderr: 'qemu-img: /data/d.qcow2: Could not write qcow2 header: No space left on device',
  })
  expect(isDiskFull(qemuImg)).toBe(true)
  expect(isDiskFull(Object.assign(new Error('x'), { stderr: 'Permission denied' }))).toBe(false)
  const error = diskFileWriteError(qemuImg, '/data/d.qcow2')
  expect((error as HostDiskFullError).directory).toBe('/data')
  expect((error as Error).message).toContain('/data/d.qcow2')
  expect(diskFileWriteError(eacces, '/data/d.qcow2')).toBe(eacces)
})
