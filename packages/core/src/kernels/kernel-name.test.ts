import { describe, expect, test } from 'vitest'
import { InvalidOptionsError } from '../errors.js'
import {
  isKernelName,
  kernelNameFile,
  metapackageOf,
  parseKernelName,
  suitesOf,
  versionedPackageOf,
} from './kernel-name.js'

describe('kernel names', () => {
  test('a suite alone is its generic kernel, looked up in the security suite first', () => {
    const name = parseKernelName('debian:trixie')
    expect(name).toMatchObject({ release: 'trixie', backports: false, flavour: '', version: undefined })
    expect(metapackageOf(name)).toBe('linux-image-amd64')
    expect(suitesOf(name).map((s) => s.suite)).toEqual(['trixie-security', 'trixie'])
  })

  test('flavours, backports and versions', () => {
    const rt = parseKernelName('debian:bookworm/rt')
    expect(metapackageOf(rt)).toBe('linux-image-rt-amd64')
    expect(versionedPackageOf(rt, '6.1.0-57')).toBe('linux-image-6.1.0-57-rt-amd64')
    expect(metapackageOf(parseKernelName('debian:bookworm/cloud'))).toBe('linux-image-cloud-amd64')
    const bpo = parseKernelName('debian:bookworm-backports')
    expect(bpo.backports).toBe(true)
    expect(suitesOf(bpo).map((s) => s.suite)).toEqual(['bookworm-backports'])
    expect(parseKernelName('debian:bookworm@6.1.0-57').version).toBe('6.1.0-57')
    expect(parseKernelName('debian:trixie/rt@6.12.57+deb13').version).toBe('6.12.57+deb13')
  })

  test('the written form is normalised, and its cache file name is unambiguous', () => {
    expect(parseKernelName('debian:bookworm/amd64').text).toBe('debian:bookworm')
    expect(parseKernelName(' debian:trixie/rt@6.12.57+deb13 ').text).toBe('debian:trixie/rt@6.12.57+deb13')
    const file = kernelNameFile(parseKernelName('debian:trixie/rt@6.12.57+deb13'))
    expect(file).not.toContain('/')
    expect(decodeURIComponent(file)).toBe('debian:trixie/rt@6.12.57+deb13')
  })

  test('only debian: strings are names; paths are not', () => {
    expect(isKernelName('debian:trixie')).toBe(true)
    expect(isKernelName('./debian/vmlinuz')).toBe(false)
    expect(isKernelName('/boot/vmlinuz-6.1.0-57-amd64')).toBe(false)
    expect(isKernelName(undefined)).toBe(false)
  })

  test('a wrong name is refused with the syntax and the choices', () => {
    expect(() => parseKernelName('debian:buster')).toThrow(
      /no Debian suite "buster".*bullseye, bookworm, trixie/,
    )
    expect(() => parseKernelName('debian:bookworm/arm64')).toThrow(/no flavour "arm64".*\/rt and \/cloud/)
    expect(() => parseKernelName('debian:')).toThrow(/debian:SUITE\[-backports\]\[\/FLAVOUR\]\[@VERSION\]/)
    expect(() => parseKernelName('debian:trixie@')).toThrow(InvalidOptionsError)
  })
})
