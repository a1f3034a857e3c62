import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import type { ResolvedKernel } from './kernel-locator.js'
import { chooseTransport } from './transport-choice.js'

// Every fake lives under one directory, removed when the file ends.
const scratch = mkdtempSync(join(tmpdir(), 'vmctl-transport-choice-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

function kernelWith(modulesDep: string): ResolvedKernel {
  const modulesDir = mkdtempSync(join(scratch, 'modules-'))
  writeFileSync(join(modulesDir, 'modules.dep'), modulesDep)
  return { image: '/k/vmlinux', format: 'elf', release: '6.1', modulesDir, source: 'option' }
}

function fakeDevice(): string {
  const dir = mkdtempSync(join(scratch, 'dev-'))
  writeFileSync(join(dir, 'vhost-vsock'), '')
  return join(dir, 'vhost-vsock')
}

const VSOCK_DEP = 'kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko: kernel/net/vmw_vsock/vsock.ko\n'

describe('transport choice', () => {
  test('auto picks vsock when host device, bridge and guest module are all there', () => {
    const choice = chooseTransport(
      undefined,
      kernelWith(VSOCK_DEP),
      {},
      { vhostDevice: fakeDevice(), bridge: '/b' },
    )
    expect(choice).toEqual({ transport: 'vsock', reason: '', bridge: '/b' })
  })

  test('auto falls back to virtio-serial and says why', () => {
    const kernel = kernelWith(VSOCK_DEP)
    const noDevice = chooseTransport(
      undefined,
      kernel,
      {},
      { vhostDevice: '/nonexistent/vhost-vsock', bridge: '/b' },
    )
    expect(noDevice.transport).toBe('virtio-serial')
    expect(noDevice.reason).toMatch(/modprobe vhost_vsock/)
    const noBridge = chooseTransport(undefined, kernel, {}, { vhostDevice: fakeDevice(), bridge: undefined })
    expect(noBridge.reason).toMatch(/apt-get install gcc/)
    const noModule = chooseTransport(
      undefined,
      kernelWith('kernel/fs/9p/9p.ko:\n'),
      {},
      {
        vhostDevice: fakeDevice(),
        bridge: '/b',
      },
    )
    expect(noModule.reason).toMatch(/no virtio vsock transport/)
  })

  test('a kernel without a module tree has vsock when its config builds it in', () => {
    const builtWith = (value: string): ResolvedKernel => {
      const tree = mkdtempSync(join(scratch, 'build-'))
      writeFileSync(join(tree, '.config'), `CONFIG_VSOCKETS=y\nCONFIG_VIRTIO_VSOCKETS=${value}\n`)
      return {
        image: join(tree, 'vmlinux'),
        format: 'elf',
        release: undefined,
        modulesDir: undefined,
        source: 'option',
      }
    }
    const probe = { vhostDevice: fakeDevice(), bridge: '/b' }
    expect(chooseTransport(undefined, builtWith('y'), {}, probe).transport).toBe('vsock')
    const asModule = chooseTransport(undefined, builtWith('m'), {}, probe)
    expect(asModule.transport).toBe('virtio-serial')
    expect(asModule.reason).toMatch(/no virtio vsock transport/)
  })

  test('vsock asked for but unavailable is an error naming the fix; bad values are rejected', () => {
    const probe = { vhostDevice: '/nonexistent/vhost-vsock', bridge: '/b' }
    expect(() => chooseTransport('vsock', kernelWith(VSOCK_DEP), {}, probe)).toThrow(
      /vsock was requested \(the transport option\) but .*modprobe vhost_vsock/,
    )
    expect(() =>
      chooseTransport(undefined, kernelWith(VSOCK_DEP), { VMCTL_TRANSPORT: 'vsock' }, probe),
    ).toThrow(/VMCTL_TRANSPORT/)
    expect(() =>
      chooseTransport(undefined, kernelWith(VSOCK_DEP), { VMCTL_TRANSPORT: 'tcp' }, probe),
    ).toThrow(/must be "auto", "vsock" or "virtio-serial"/)
    expect(chooseTransport('virtio-serial', kernelWith(VSOCK_DEP), {}, probe).transport).toBe('virtio-serial')
  })
})
