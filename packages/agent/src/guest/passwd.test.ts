import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { userGroups } from './passwd.js'

describe("a user's groups from the root's /etc/group", () => {
  const etc = mkdtempSync(join(tmpdir(), 'vmctl-passwd-'))
  afterAll(() => rmSync(etc, { recursive: true, force: true }))

  test('the primary group, then each group that lists the user; a gid no process can hold is passed over', () => {
    writeFileSync(
      join(etc, 'group'),
      [
        'nogroup:x:65534:',
        'extra:x:4242:daemon,nobody',
        'other:x:4243:daemon',
        'typo:x:4294967296:nobody',
        'minus:x:4294967295:nobody',
        'top:x:4294967294:nobody',
      ].join('\n'),
    )
    // Before: [65534, 4242, 4294967296, 4294967295, 4294967294], and the spawner failed every
    // command of the user with EINVAL (group-list.c refuses what setgroups would).
    expect(userGroups(etc, 'nobody', [65534])).toEqual([65534, 4242, 4294967294])
  })
})
