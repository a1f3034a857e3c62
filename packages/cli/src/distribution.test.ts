import { describe, expect, test } from 'vitest'
import { HOST_PACKAGES, installCommand, packageManager } from './distribution.js'

describe('distribution', () => {
  test('picks the package manager from os-release ID, then ID_LIKE', () => {
    expect(packageManager('ID=debian\nVERSION_ID="12"\n')).toBe('apt')
    expect(packageManager('ID=ubuntu\nID_LIKE=debian\n')).toBe('apt')
    expect(packageManager('ID=linuxmint\nID_LIKE="ubuntu debian"\n')).toBe('apt')
    expect(packageManager('ID=fedora\n')).toBe('dnf')
    expect(packageManager('ID="rocky"\nID_LIKE="rhel centos fedora"\n')).toBe('dnf')
    expect(packageManager('ID=arch\n')).toBe('pacman')
    expect(packageManager('ID=endeavouros\nID_LIKE=arch\n')).toBe('pacman')
    expect(packageManager('ID=alpine\n')).toBeUndefined()
    expect(packageManager('')).toBeUndefined()
  })

  test('names the package of each distribution in its install command', () => {
    expect(installCommand('apt', [HOST_PACKAGES['qemu-img'].apt])).toMatch(/apt-get install qemu-utils$/)
    expect(installCommand('dnf', [HOST_PACKAGES.qemu.dnf])).toMatch(/dnf install qemu-system-x86-core$/)
    expect(installCommand('pacman', [HOST_PACKAGES.setpriv.pacman])).toMatch(/pacman -S util-linux$/)
    expect(installCommand(undefined, ['e2fsprogs'])).toMatch(/e2fsprogs with your distribution/)
  })
})
