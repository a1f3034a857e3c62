import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test } from 'vitest'
import { ciCacheKey } from '../index.js'

test('the CI cache key names vmctl, Node, QEMU (by its --version) and a hash of the CPU model', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmctl-key-'))
  try {
    const fake = join(dir, 'qemu-system-x86_64')
    writeFileSync(fake, '#!/bin/sh\necho "QEMU emulator version 9.1.2 (Debian 1:9.1.2+ds-1)"\n')
    chmodSync(fake, 0o755)
    const key = ciCacheKey({ VMCTL_QEMU: fake })
    expect(key).toMatch(
      new RegExp(`^vmctl-\\d+\\.\\d+\\.\\d+-node${process.versions.node}-qemu9\\.1\\.2-cpu-[0-9a-f]{10}$`),
    )
    expect(ciCacheKey({ VMCTL_QEMU: join(dir, 'missing') })).toContain('-qemunone-')
    // Stable: nothing in it depends on the time, a path or the process.
    expect(ciCacheKey({ VMCTL_QEMU: fake })).toBe(key)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
