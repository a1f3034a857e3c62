import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import type { ResolvedKernel } from '../host/kernel-locator.js'
import { checkKernelFits } from './kernel-fit.js'

const dir = mkdtempSync(join(tmpdir(), 'vmctl-kernel-fit-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A kernel directory with only a config beside the image: what the check reads. */
function kernelWith(name: string, config: string[], modulesDep?: string[]): ResolvedKernel {
  const at = join(dir, name)
  const modulesDir = modulesDep ? join(at, 'lib/modules/6.1.0-test') : undefined
  mkdirSync(modulesDir ?? at, { recursive: true })
  writeFileSync(join(at, 'config'), `${config.join('\n')}\n`)
  if (modulesDir) writeFileSync(join(modulesDir, 'modules.dep'), modulesDep!.map((m) => `${m}:\n`).join(''))
  return { image: join(at, 'vmlinux'), format: 'elf', release: '6.1.0-test', modulesDir, source: 'option' }
}

const BUILT_IN = [
  'CONFIG_VIRTIO_MMIO=y',
  'CONFIG_VIRTIO_BLK=y',
  'CONFIG_EXT4_FS=y',
  'CONFIG_DEVTMPFS=y',
  'CONFIG_BLK_DEV_INITRD=y',
  'CONFIG_VIRTIO_CONSOLE=y',
  'CONFIG_ACPI=y',
  'CONFIG_PCI=y',
]
const NINE_P = ['CONFIG_NET_9P=y', 'CONFIG_NET_9P_VIRTIO=y', 'CONFIG_9P_FS=y', 'CONFIG_OVERLAY_FS=y']
const needs = { hostRoot: true, transport: 'virtio-serial' as const }

describe('the pre-boot check of a kernel against its mode', () => {
  test('every driver built in: accepted, with no modules at all', () => {
    expect(() => checkKernelFits(kernelWith('all-y', [...BUILT_IN, ...NINE_P]), needs)).not.toThrow()
  })

  test('no 9p (like the cloud kernel): refused for a host root, naming the options and the ways out', () => {
    const cloud = kernelWith(
      'cloud',
      [...BUILT_IN, '# CONFIG_9P_FS is not set', 'CONFIG_OVERLAY_FS=m'],
      ['kernel/fs/overlayfs/overlay.ko'],
    )
    const started = performance.now()
    let message = ''
    try {
      checkKernelFits(cloud, needs)
    } catch (error) {
      message = (error as Error).message
    }
    expect(performance.now() - started).toBeLessThan(1000)
    expect(message).toMatch(
      /missing 9p over virtio.*CONFIG_NET_9P is not set, CONFIG_NET_9P_VIRTIO is not set, CONFIG_9P_FS is not set/,
    )
    expect(message).toMatch(/Fix: hostRoot: false .* or an image/)
    // The same kernel without a host root needs no 9p.
    expect(() => checkKernelFits(cloud, { ...needs, hostRoot: false })).not.toThrow()
  })

  test('drivers as modules with no module tree found: says where to put them', () => {
    const config = [...BUILT_IN.filter((o) => !o.includes('VIRTIO_BLK')), 'CONFIG_VIRTIO_BLK=m', ...NINE_P]
    expect(() => checkKernelFits(kernelWith('no-tree', config), { ...needs, hostRoot: false })).toThrow(
      /not loadable a virtio block driver.*CONFIG_VIRTIO_BLK=m[\s\S]*INSTALL_MOD_PATH/,
    )
    const withTree = kernelWith('tree', config, ['kernel/drivers/block/virtio_blk.ko'])
    expect(() => checkKernelFits(withTree, { ...needs, hostRoot: false })).not.toThrow()
  })

  test('ACPI without PCI (a tinyconfig build): refused, naming CONFIG_PCI', () => {
    const kernel = kernelWith('no-pci', [...BUILT_IN.filter((o) => o !== 'CONFIG_PCI=y'), ...NINE_P])
    expect(() => checkKernelFits(kernel, needs)).toThrow(/missing ACPI with PCI .*: CONFIG_PCI is not set/)
  })

  test('a vsock agent needs no virtio console; a virtio-serial one does', () => {
    const config = [...BUILT_IN.filter((o) => !o.includes('CONSOLE')), ...NINE_P]
    const kernel = kernelWith('no-console', config)
    expect(() => checkKernelFits(kernel, { ...needs, transport: 'vsock' })).not.toThrow()
    expect(() => checkKernelFits(kernel, needs)).toThrow(/CONFIG_VIRTIO_CONSOLE is not set/)
  })
})
