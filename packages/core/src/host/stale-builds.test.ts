import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, test } from 'vitest'
import { removeStaleBuilds } from './stale-builds.js'

const dir = mkdtempSync(join(tmpdir(), 'stale-builds-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

test('old unfinished builds of dead processes go; recent ones, those of live ones and finished files stay', () => {
  // PID 2^22 + 1 is above Linux's pid_max ceiling: no process has it.
  const dead = 2 ** 22 + 1
  const names = {
    stale: [`abc.ext4.${dead}.partial`, `key.${dead}.staging.qcow2`, `key.${dead}.staging`],
    kept: ['abc.ext4', `def.cpio.${process.pid}.partial`, `key.${process.pid}.staging`, 'notes.1.txt'],
  }
  const hourAgo = new Date(Date.now() - 3_600_000)
  for (const name of [...names.stale, ...names.kept]) {
    if (name.endsWith('.staging')) mkdirSync(join(dir, name))
    else writeFileSync(join(dir, name), 'x')
    utimesSync(join(dir, name), hourAgo, hourAgo)
  }
  // A dead process's build touched a minute ago may be a live one in another PID namespace.
  const recent = `ghi.cpio.${dead}.partial`
  writeFileSync(join(dir, recent), 'x')
  names.kept.push(recent)
  expect(removeStaleBuilds(dir).sort()).toEqual([...names.stale].sort())
  expect(readdirSync(dir).sort()).toEqual([...names.kept].sort())
  expect(removeStaleBuilds(join(dir, 'missing'))).toEqual([])
  expect(existsSync(dir)).toBe(true)
})
