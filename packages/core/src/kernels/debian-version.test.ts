import { describe, expect, it } from 'vitest'
import { compareDebianVersions, highestVersion } from './debian-version.js'

describe('Debian version order', () => {
  // Pairs in ascending order, as dpkg --compare-versions A lt B says.
  const ascending: [string, string][] = [
    ['6.1.153-1', '6.1.158-1'],
    ['6.1.9-1', '6.1.10-1'],
    ['1.0~rc1', '1.0'],
    ['1.0~~', '1.0~'],
    ['1.0', '1.0a'],
    ['1.0a', '1.0+'],
    ['1.0', '1.0.1'],
    ['1.0-1', '1.0-1+deb12u1'],
    ['1.0-1+deb12u1', '1.0-1+deb12u2'],
    ['9.9', '1:0.1'],
    ['1.30.1-6', '1:1.35.0-4'],
    ['1.0-9', '1.0-10'],
    ['2.0-1', '10.0-1'],
  ]
  it.each(ascending)('%s < %s', (low, high) => {
    expect(compareDebianVersions(low, high)).toBe(-1)
    expect(compareDebianVersions(high, low)).toBe(1)
  })

  it('treats equal versions, and leading zeros, as equal', () => {
    expect(compareDebianVersions('6.1.158-1', '6.1.158-1')).toBe(0)
    expect(compareDebianVersions('1.01', '1.1')).toBe(0)
    expect(compareDebianVersions('0:1.0', '1.0')).toBe(0)
  })

  it('picks the highest of several entries, wherever it is listed', () => {
    const entries = [{ v: '6.1.153-1' }, { v: '6.1.158-1' }, { v: '6.1.155-1' }]
    expect(highestVersion(entries, (entry) => entry.v)).toEqual({ v: '6.1.158-1' })
    expect(highestVersion([], (entry: { v: string }) => entry.v)).toBeUndefined()
  })
})
