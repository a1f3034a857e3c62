import { describe, expect, test } from 'vitest'
import { UnsupportedHostError } from '../errors.js'
import { assertSupportedHost } from './host-platform.js'

describe('assertSupportedHost', () => {
  test('x86-64 Linux is the host vmctl runs on', () => {
    expect(() => assertSupportedHost('linux', 'x64')).not.toThrow()
  })

  test('macOS, Windows and arm64 Linux are refused with the cause and the fix', () => {
    for (const [platform, arch, cause] of [
      [
        'darwin',
        'arm64',
        /this host is darwin\/arm64, and vmctl runs VMs on x86-64 Linux only: macOS cannot serve/,
      ],
      ['win32', 'x64', /Windows cannot serve .*WSL 2 is a Linux host/],
      [
        'linux',
        'arm64',
        /this host is linux\/arm64, and vmctl runs VMs on x86-64 Linux only: its guests are x86-64 and run the host's own programs .* arm64 here/,
      ],
    ] as const) {
      const error = (() => {
        try {
          assertSupportedHost(platform, arch)
        } catch (e) {
          return e
        }
      })()
      expect(error).toBeInstanceOf(UnsupportedHostError)
      expect((error as UnsupportedHostError).code).toBe('UNSUPPORTED_HOST')
      expect((error as Error).message).toMatch(cause)
      expect((error as Error).message).toMatch(/Fix: run the VM tests on an x86-64 Linux machine/)
    }
  })
})
