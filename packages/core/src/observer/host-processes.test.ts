import { describe, expect, test } from 'vitest'
import { qmpSocketPath, reservedName } from './host-processes.js'

describe('qmpSocketPath', () => {
  test("reads the socket path of QEMU's -qmp option", () => {
    expect(
      qmpSocketPath(['qemu-system-x86_64', '-qmp', 'unix:/run/vmctl/vms/a/qmp.sock,server=on,wait=off']),
    ).toBe('/run/vmctl/vms/a/qmp.sock')
    expect(qmpSocketPath(['qemu', '-m', '1G', '-qmp', 'unix:/tmp/x,,y/qmp.sock,server=on'])).toBe(
      '/tmp/x,y/qmp.sock',
    )
    expect(qmpSocketPath(['qemu', '-qmp', 'unix:/tmp/q.sock'])).toBe('/tmp/q.sock')
  })
  test('nothing for a QEMU without a unix QMP socket', () => {
    expect(qmpSocketPath(['qemu', '-m', '1G'])).toBeUndefined()
    expect(qmpSocketPath(['qemu', '-qmp', 'tcp:127.0.0.1:4444,server=on'])).toBeUndefined()
  })
})

describe('reservedName', () => {
  test('the VM name on the kernel command line, if any', () => {
    const append = 'console=ttyS0 vmctl_hostname=vm-3fa2c1 vmctl_net=10.0.2.15/24'
    expect(reservedName(['qemu', '-kernel', 'k', '-append', append])).toBe('vm-3fa2c1')
    expect(reservedName(['qemu', '-append', 'x_vmctl_hostname=no'])).toBeUndefined()
    expect(reservedName(['qemu', '-m', '1G'])).toBeUndefined()
  })
})
