import { describe, expect, test } from 'vitest'
import { guestPortKey, parseGuestPort } from './guest-port.js'

describe('guest ports', () => {
  test('numbers and "N/tcp" are TCP, "N/udp" UDP; anything else is no port', () => {
    expect(parseGuestPort(8080)).toEqual({ port: 8080, protocol: 'tcp' })
    expect(parseGuestPort('8080/tcp')).toEqual({ port: 8080, protocol: 'tcp' })
    expect(parseGuestPort('53/udp')).toEqual({ port: 53, protocol: 'udp' })
    for (const bad of [0, 65_536, 1.5, -1, '53/sctp', '53/UDP', 'udp/53', ' 53', '', null, undefined, [53]])
      expect(parseGuestPort(bad), String(bad)).toBeUndefined()
  })

  test('keys: TCP by its number alone, UDP with its protocol; a key reads back', () => {
    expect(guestPortKey({ port: 8080, protocol: 'tcp' })).toBe('8080')
    expect(guestPortKey({ port: 53, protocol: 'udp' })).toBe('53/udp')
    for (const key of ['8080', '53/udp']) expect(guestPortKey(parseGuestPort(key)!)).toBe(key)
  })
})
