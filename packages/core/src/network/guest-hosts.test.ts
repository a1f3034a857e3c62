import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { hostsScript, tellOthers } from './guest-hosts.js'
import type { MemberInfo } from './network-directory.js'

const dir = mkdtempSync(join(tmpdir(), 'vmctl-hosts-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const member = (ip: string, ...names: string[]): MemberInfo => ({
  member: names[0]!,
  names,
  ip,
  mac: '',
  bound: true,
})

/** The script as the guest's sh runs it, on a hosts file and version files of this test's own. */
function run(network: string, version: number, members: MemberInfo[]): string {
  const script = hostsScript(network, version, members)
    .replaceAll('/etc/hosts', join(dir, 'hosts'))
    .replaceAll('/run/', `${dir}/`)
  execFileSync('sh', ['-c', script])
  return readFileSync(join(dir, 'hosts'), 'utf8')
}

describe('the /etc/hosts script', () => {
  test("keeps the guest's own lines and other networks', replaces its network's, and keeps only newer lists", () => {
    writeFileSync(join(dir, 'hosts'), '127.0.0.1\tlocalhost\n::1 ip6-localhost\n# a comment\n')
    expect(run('n1', 1, [member('10.213.0.10', 'db', 'primary')])).toBe(
      '127.0.0.1\tlocalhost\n::1 ip6-localhost\n# a comment\n10.213.0.10 db primary # vmctl-net:n1\n',
    )
    run('n2', 1, [member('10.213.1.10', 'x')])
    const both = run('n1', 3, [member('10.213.0.10', 'db'), member('10.213.0.11', 'app')])
    expect(both).toBe(
      '127.0.0.1\tlocalhost\n::1 ip6-localhost\n# a comment\n10.213.1.10 x # vmctl-net:n2\n10.213.0.10 db # vmctl-net:n1\n10.213.0.11 app # vmctl-net:n1\n',
    )
    // An older list (a write that lost the race) changes nothing.
    expect(run('n1', 2, [member('10.213.0.10', 'db')])).toBe(both)
  })

  test('a hosts file without a final newline, or none at all', () => {
    writeFileSync(join(dir, 'hosts'), '127.0.0.1 localhost')
    expect(run('n3', 1, [member('10.213.2.10', 'a')])).toBe(
      '127.0.0.1 localhost\n10.213.2.10 a # vmctl-net:n3\n',
    )
    rmSync(join(dir, 'hosts'))
    expect(run('n4', 1, [member('10.213.3.10', 'b')])).toBe('10.213.3.10 b # vmctl-net:n4\n')
  })
})

describe('telling other members', () => {
  test('a handle of this process that fails (closed, its VM running on) is not the end: the VM is attached', async () => {
    const written: string[] = []
    const closedHandle = { exec: () => Promise.reject(new Error('VM m1 handle was closed')) }
    const attached = {
      exec: async (command: string) => void written.push(command),
      close: async () => {},
    }
    await tellOthers(
      new Map([['m1', ['echo names']]]),
      () => closedHandle,
      async () => attached,
    )
    expect(written).toEqual(['echo names'])
  })
})
