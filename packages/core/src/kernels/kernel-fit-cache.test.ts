import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import type { ResolvedKernel } from '../host/kernel-locator.js'
import { checkKernelFitsCached } from './kernel-fit-cache.js'

const dir = mkdtempSync(join(tmpdir(), 'vmctl-kernel-fit-cache-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const FITS = [
  'CONFIG_VIRTIO_MMIO=y',
  'CONFIG_VIRTIO_BLK=y',
  'CONFIG_EXT4_FS=y',
  'CONFIG_DEVTMPFS=y',
  'CONFIG_BLK_DEV_INITRD=y',
  'CONFIG_VIRTIO_CONSOLE=y',
  'CONFIG_ACPI=y',
  'CONFIG_PCI=y',
  'CONFIG_NET_9P=y',
  'CONFIG_NET_9P_VIRTIO=y',
  'CONFIG_9P_FS=y',
  'CONFIG_OVERLAY_FS=y',
]
const needs = { hostRoot: true, transport: 'virtio-serial' as const }

function kernel(name: string, config: string[]): ResolvedKernel {
  const at = join(dir, name)
  mkdirSync(at, { recursive: true })
  writeFileSync(join(at, 'vmlinux'), 'not a kernel')
  writeFileSync(join(at, 'config'), `${config.join('\n')}\n`)
  return {
    image: join(at, 'vmlinux'),
    format: 'elf',
    release: '6.1.0-test',
    modulesDir: undefined,
    source: 'option',
  }
}

describe('the kernel fit check, remembered', () => {
  test('a fit is remembered on disk; a changed config is checked again and its error given', () => {
    const cache = join(dir, 'cache-1')
    const k = kernel('k1', FITS)
    checkKernelFitsCached(k, needs, cache)
    expect(readdirSync(join(cache, 'kernel-fit'))).toHaveLength(1)
    // The same config rewritten without 9p (a new size and mtime): refused, not answered from the cache.
    writeFileSync(join(dir, 'k1', 'config'), `${FITS.filter((o) => !o.includes('9P')).join('\n')}\n`)
    utimesSync(join(dir, 'k1', 'config'), new Date(), new Date(Date.now() + 5_000))
    expect(() => checkKernelFitsCached(k, needs, cache)).toThrow(/CONFIG_NET_9P is not set[\s\S]*Fix:/)
    expect(readdirSync(join(cache, 'kernel-fit'))).toHaveLength(1)
  })

  test('an unfit kernel leaves nothing, and other needs are judged on their own', () => {
    const cache = join(dir, 'cache-2')
    const k = kernel(
      'k2',
      FITS.filter((o) => !o.includes('OVERLAY')),
    )
    expect(() => checkKernelFitsCached(k, needs, cache)).toThrow(/overlayfs/)
    expect(() => readdirSync(join(cache, 'kernel-fit'))).toThrow()
    // Without a host root it needs no overlayfs: fits, and that verdict alone is kept.
    checkKernelFitsCached(k, { ...needs, hostRoot: false }, cache)
    expect(() => checkKernelFitsCached(k, needs, cache)).toThrow(/overlayfs/)
    expect(readdirSync(join(cache, 'kernel-fit'))).toHaveLength(1)
  })
})
