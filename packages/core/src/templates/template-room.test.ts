import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, test } from 'vitest'
import { freeMiB } from '../util/disk-full.js'
import { noRoomForTemplate, TEMPLATE_ROOM_FLOOR_MIB } from './template-room.js'

const cache = mkdtempSync(join(tmpdir(), 'vmctl-template-room-'))
afterAll(() => rmSync(cache, { recursive: true, force: true }))

test('free space is read from the nearest directory that exists (the first template makes its own)', () => {
  const free = freeMiB(join(cache, 'templates', 'not-yet'))
  expect(free).toBeGreaterThan(0)
  expect(Math.abs(free! - freeMiB(cache)!)).toBeLessThan(64)
})

test('a template needs at most the floor, or the guest memory when that is smaller', () => {
  const free = freeMiB(cache)!
  // This filesystem has room for a guest smaller than what is free...
  expect(noRoomForTemplate(cache, 64)).toBeUndefined()
  // ...and the warning, when there is none, names the directory, the figures and the fix.
  if (free < TEMPLATE_ROOM_FLOOR_MIB) {
    expect(noRoomForTemplate(cache, 1024)).toMatch(/has \d+ MiB free.*needs up to 512 MiB.*Fix:/)
  } else {
    expect(noRoomForTemplate(cache, 1024)).toBeUndefined()
  }
})
