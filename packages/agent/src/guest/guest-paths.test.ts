import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { planSpawn, resolveUser } from './exec-service.js'
import { lookupUser } from './passwd.js'
import { resolveInRoot } from './root-paths.js'

// One directory for the file's temporary files, removed when it ends.
const work = mkdtempSync(join(tmpdir(), 'vmctl-guest-paths-test-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

function fakeRoot(): string {
  const root = mkdtempSync(join(work, 'guest-root-'))
  mkdirSync(join(root, 'usr/share/zoneinfo'), { recursive: true })
  mkdirSync(join(root, 'etc'))
  writeFileSync(join(root, 'usr/share/zoneinfo/UTC'), 'tz')
  symlinkSync('/usr/share/zoneinfo/UTC', join(root, 'etc/localtime'))
  symlinkSync('usr/share', join(root, 'share'))
  symlinkSync('../../../../..', join(root, 'usr/share/escape'))
  writeFileSync(
    join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
  )
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nstaff:x:50:\n')
  return root
}

describe('paths inside the guest root', () => {
  test('absolute symlinks restart at the root, .. never leaves it', () => {
    const root = fakeRoot()
    expect(resolveInRoot(root, '/etc/localtime')).toBe(`${root}/usr/share/zoneinfo/UTC`)
    expect(resolveInRoot(root, '/etc/localtime', false)).toBe(`${root}/etc/localtime`)
    expect(resolveInRoot(root, '/share/zoneinfo')).toBe(`${root}/usr/share/zoneinfo`)
    expect(resolveInRoot(root, '/usr/share/escape/etc')).toBe(`${root}/etc`)
    expect(resolveInRoot(root, '/../../etc/passwd')).toBe(`${root}/etc/passwd`)
    expect(() => resolveInRoot(root, 'relative')).toThrow(/absolute/)
  })

  test('a path with no link in it is itself, whatever the root is reached by', () => {
    const root = fakeRoot()
    writeFileSync(join(root, 'etc/.hidden'), '')
    expect(resolveInRoot(root, '/etc/passwd')).toBe(`${root}/etc/passwd`)
    expect(resolveInRoot(root, '//etc//.hidden')).toBe(`${root}/etc/.hidden`)
    expect(resolveInRoot(root, '/etc/missing/file')).toBe(`${root}/etc/missing/file`)
    expect(resolveInRoot(root, '/share/./zoneinfo/UTC')).toBe(`${root}/usr/share/zoneinfo/UTC`)
    expect(resolveInRoot(root, '/usr/share/../share/zoneinfo')).toBe(`${root}/usr/share/zoneinfo`)
    // A root behind a link: the kernel's realpath names its target, so the walk decides.
    const linked = `${root}-link`
    symlinkSync(root, linked)
    expect(resolveInRoot(linked, '/etc/passwd')).toBe(`${linked}/etc/passwd`)
    expect(resolveInRoot(linked, '/etc/localtime')).toBe(`${linked}/usr/share/zoneinfo/UTC`)
    rmSync(linked)
  })

  test('users and groups come from the root, by name or number', () => {
    const root = fakeRoot()
    expect(lookupUser(`${root}/etc`, 'nobody')).toEqual({
      name: 'nobody',
      uid: 65534,
      gid: 65534,
      home: '/nonexistent',
    })
    expect(resolveUser('nobody:staff', { busybox: 'busybox', chrootPath: root })).toMatchObject({
      uid: 65534,
      gid: 50,
    })
    expect(resolveUser('ghost', { busybox: 'busybox', chrootPath: root })).toMatch(/no user "ghost"/)
  })

  test("a user's groups are those of the root's /etc/group that list them, as initgroups gives", () => {
    const root = fakeRoot()
    writeFileSync(
      join(root, 'etc/group'),
      'root:x:0:\nstaff:x:50:nobody\nssl-cert:x:110:postgres,nobody\nnobodyish:x:7:nobody2\nnogroup:x:65534:\n',
    )
    const guest = { busybox: 'busybox', chrootPath: root }
    expect(resolveUser('nobody', guest)).toMatchObject({ gid: 65534, groups: [65534, 50, 110] })
    // A named group is the primary one; the user's own stay supplementary.
    expect(resolveUser('nobody:root', guest)).toMatchObject({ gid: 0, groups: [0, 65534, 50, 110] })
    expect(resolveUser('root', guest)).toMatchObject({ gid: 0, groups: [0] })
  })
})

describe('spawn plans', () => {
  const start = {
    argv: ['ls', '-l'],
    shell: '',
    env: {},
    cwd: '',
    timeoutMs: 0,
    stdin: false,
    user: '',
    noStarted: false,
  }

  test('no root, no cwd, no user: the command itself', () => {
    expect(planSpawn(start, { busybox: '/bin/busybox', chrootPath: undefined })).toEqual({
      file: 'ls',
      args: ['-l'],
    })
  })

  test('a root, a cwd and a user go through one nsenter exec', () => {
    const root = fakeRoot()
    const plan = planSpawn(
      { ...start, shell: 'echo hi', argv: [], cwd: '/share' },
      { busybox: '/bin/busybox', chrootPath: root },
      { name: 'nobody', uid: 65534, gid: 50, home: '/' },
    )
    expect(plan).toEqual({
      file: '/bin/busybox',
      args: [
        'nsenter',
        '-F',
        `-r${root}`,
        `-w${root}/usr/share`,
        '-S',
        '65534',
        '-G',
        '50',
        '/bin/sh',
        '-c',
        'echo hi',
      ],
    })
  })

  test("a bare name in a root is the root's binary by its path (busybox would run its own applet)", () => {
    const root = fakeRoot()
    mkdirSync(join(root, 'usr/bin'), { recursive: true })
    writeFileSync(join(root, 'usr/bin/ls'), '#!/bin/sh\n', { mode: 0o755 })
    writeFileSync(join(root, 'usr/bin/notes'), 'not executable', { mode: 0o644 })
    symlinkSync('/usr/bin/ls', join(root, 'usr/bin/dir'))
    const guest = { busybox: '/bin/busybox', chrootPath: root }
    expect(planSpawn(start, guest).args).toEqual([
      'nsenter',
      '-F',
      `-r${root}`,
      `-w${root}/`,
      '/usr/bin/ls',
      '-l',
    ])
    expect(planSpawn({ ...start, argv: ['dir'] }, guest).args.at(-1)).toBe('/usr/bin/dir')
    expect(planSpawn({ ...start, argv: ['notes'] }, guest).notFound).toBe('notes')
    expect(planSpawn({ ...start, argv: ['ls'], env: { PATH: '/nowhere' } }, guest).notFound).toBe('ls')
  })
})
