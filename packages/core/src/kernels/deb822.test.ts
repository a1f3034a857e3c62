import { describe, expect, test } from 'vitest'
import { dependsNames, findPackage, parseStanza, releaseChecksums } from './deb822.js'

const PACKAGES = `Package: linux-headers-amd64
Version: 6.1.192-3
Depends: linux-headers-6.1.0-57-amd64 (= 6.1.192-3)

Package: linux-image-amd64
Source: linux-signed-amd64 (6.1.192-3)
Version: 6.1.192-3
Installed-Size: 13
Depends: linux-image-6.1.0-57-amd64 (= 6.1.192-3)
Description: Linux for 64-bit PCs (meta-package)
 This package depends on the latest Linux kernel and modules for use on PCs
 with AMD64, Intel 64 or VIA Nano processors.
Filename: pool/updates/main/l/linux-signed-amd64/linux-image-amd64_6.1.192-3_amd64.deb
Size: 1480
SHA256: 0f1e2d3c

Package: linux-image-amd64-signed-template
Version: 6.1.192-3
`

describe('Debian control files', () => {
  test('finds a package stanza by exact name, continuation lines included', () => {
    const stanza = findPackage(PACKAGES, 'linux-image-amd64')!
    expect(stanza.get('Version')).toBe('6.1.192-3')
    expect(stanza.get('Filename')).toMatch(/^pool\/updates\/.*_amd64\.deb$/)
    expect(stanza.get('Size')).toBe('1480')
    expect(stanza.get('Description')).toMatch(/\(meta-package\)\nThis package depends.*\nwith AMD64/)
    expect(findPackage(PACKAGES, 'linux-headers-amd64')!.get('Depends')).toMatch(/^linux-headers-6/)
    expect(findPackage(PACKAGES, 'linux-image')).toBeUndefined()
    expect(findPackage(PACKAGES, 'busybox-static')).toBeUndefined()
  })

  test('takes the highest version of a package listed more than once, as apt does', () => {
    const index = [
      'Package: linux-source-6.1\nVersion: 6.1.153-1\nFilename: a.deb',
      'Package: linux-source-6.1\nVersion: 6.1.158-1\nFilename: c.deb',
      'Package: linux-source-6.1\nVersion: 6.1.155-1\nFilename: b.deb',
    ].join('\n\n')
    expect(findPackage(index, 'linux-source-6.1')!.get('Filename')).toBe('c.deb')
    expect(findPackage(`${index}\n`, 'linux-source-6.1')!.get('Version')).toBe('6.1.158-1')
  })

  test('reads a package list out of Depends: first alternatives, no versions or arch qualifiers', () => {
    expect(dependsNames('linux-image-6.1.0-57-amd64 (= 6.1.192-3)')).toEqual(['linux-image-6.1.0-57-amd64'])
    expect(dependsNames('a (>= 1) | b, c:any, d')).toEqual(['a', 'c', 'd'])
    expect(dependsNames(undefined)).toEqual([])
  })

  test("reads a Release file's SHA256 list", () => {
    const release = parseStanza(`Origin: Debian
Suite: oldstable
Codename: bookworm
MD5Sum:
 b838d31986207780a596ce3e8010f90f  8790396 main/binary-amd64/Packages.xz
SHA256:
 515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f 50060337 main/binary-amd64/Packages
 89426314d157281cf62e252ce1a0634888c84c4a47dd317fb6bf690c0fab6a21   383216 main/binary-amd64/Packages.xz
`)
    expect(release.get('Codename')).toBe('bookworm')
    const sums = releaseChecksums(release)
    expect(sums.get('main/binary-amd64/Packages.xz')).toEqual({
      sha256: '89426314d157281cf62e252ce1a0634888c84c4a47dd317fb6bf690c0fab6a21',
      size: 383216,
    })
    expect(sums.size).toBe(2)
  })
})
