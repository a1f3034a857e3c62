import { describe, expect, it } from 'vitest'
import { InvalidOptionsError } from '../errors.js'
import { checkGuestMemory, hostMemoryMiB } from './host-memory.js'

const MEMINFO = `MemTotal:        4030464 kB
MemFree:          812340 kB
MemAvailable:    2097152 kB
Buffers:          123456 kB
`

describe('guest memory against the host', () => {
  it('reads MemTotal and MemAvailable in MiB', () => {
    expect(hostMemoryMiB(MEMINFO)).toEqual({ totalMiB: 3936, availableMiB: 2048 })
    expect(hostMemoryMiB('nothing useful')).toBeUndefined()
  })

  it('allows up to MemTotal, even above what is available now', () => {
    expect(() => checkGuestMemory(1024, MEMINFO)).not.toThrow()
    expect(() => checkGuestMemory(3000, MEMINFO)).not.toThrow()
    expect(() => checkGuestMemory(3936, MEMINFO)).not.toThrow()
  })

  it('refuses more than the host has, naming the limit and what the host has', () => {
    expect(() => checkGuestMemory(900_000, MEMINFO)).toThrow(InvalidOptionsError)
    expect(() => checkGuestMemory(900_000, MEMINFO)).toThrow(
      'memoryMiB 900000 is more than this host has (3936 MiB in all, 2048 MiB available now). Fix: set memoryMiB to at most 3936',
    )
  })

  it('refuses less than the guest boots in, at once, naming the least and the fix', () => {
    // 64 MiB used to boot silently into the 180 s TCG timeout; 1 MiB failed in QEMU's words.
    for (const memoryMiB of [1, 64, 127])
      expect(() => checkGuestMemory(memoryMiB, MEMINFO)).toThrow(
        `memoryMiB ${memoryMiB} is too little for the guest: its kernel, initramfs and agent need at least 128 MiB. Fix: set memoryMiB to 128 or more`,
      )
    expect(() => checkGuestMemory(128, MEMINFO)).not.toThrow()
  })

  it('says nothing where /proc/meminfo cannot be read', () => {
    expect(() => checkGuestMemory(900_000, '')).not.toThrow()
  })
})
