import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os, { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout } from 'node:timers/promises'
import { afterAll, describe, expect, test } from 'vitest'
import { guestAddresses } from './guest-addresses.js'
import { guestInfo } from './info-service.js'

const work = mkdtempSync(join(tmpdir(), 'guest-info-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

describe('guest info', () => {
  test('a root mounted after the first call is read then, and its os-release only once', () => {
    const root = join(work, 'root')
    const info = () => guestInfo({ busybox: 'busybox', chrootPath: root })
    // A template is saved before its root is mounted: nothing to read yet, and nothing kept.
    expect(info().osRelease).toBe('')
    mkdirSync(join(root, 'etc'), { recursive: true })
    writeFileSync(join(root, 'etc/os-release'), 'NAME=Debian\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    expect(info().osRelease).toBe('Debian GNU/Linux 12 (bookworm)')
    // Read once: every later info() would otherwise read it over the root's 9p share again.
    writeFileSync(join(root, 'etc/os-release'), 'PRETTY_NAME="changed"\n')
    expect(info().osRelease).toBe('Debian GNU/Linux 12 (bookworm)')
  })

  test('the CPUs the agent can run on, and the rest of the machine', () => {
    const info = guestInfo({ busybox: 'busybox', chrootPath: undefined })
    expect(info.cpus).toBe(os.availableParallelism())
    expect(info.cpus).toBeGreaterThan(0)
    expect(info.memoryTotalBytes).toBe(os.totalmem())
    expect(info.hostname).toBe(os.hostname())
    const available = Number(readFileSync('/proc/meminfo', 'utf8').match(/^MemAvailable:\s+(\d+)/m)?.[1])
    // Free memory moves between two reads; within 64 MiB of each other.
    expect(Math.abs(info.memoryAvailableBytes - available * 1024)).toBeLessThan(64 << 20)
  })

  test('the uptime follows /proc/uptime, read once then counted on the monotonic clock', async () => {
    const root = { busybox: 'busybox', chrootPath: undefined }
    const procUptime = () => Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0])
    expect(Math.abs(guestInfo(root).uptimeSeconds - procUptime())).toBeLessThan(0.1)
    await setTimeout(300)
    const later = guestInfo(root).uptimeSeconds
    expect(Math.abs(later - procUptime())).toBeLessThan(0.1)
  })
})

describe('guest addresses', () => {
  test("os.networkInterfaces()'s addresses, the same on a call that finds the tables unchanged", () => {
    const expected = Object.entries(os.networkInterfaces()).flatMap(([name, list]) =>
      (list ?? []).map((a) => ({ interface: name, address: a.address, family: a.family })),
    )
    for (let call = 0; call < 2; call++) {
      const addresses = guestAddresses()
      expect(addresses.map(({ prefix: _, ...a }) => a)).toEqual(expected)
      expect(addresses.every((a) => a.prefix >= 0 && a.prefix <= 128)).toBe(true)
    }
  })
})
