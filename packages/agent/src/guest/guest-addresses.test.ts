import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'

// The built module, in a network namespace of its own (root, as the suite runs here and in CI):
// the host's addresses stay as they are.
const built = fileURLToPath(new URL('../../dist/guest/guest-addresses.js', import.meta.url))
const canUnshare = spawnSync('unshare', ['-n', 'true']).status === 0

const script = `
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { guestAddresses } from ${JSON.stringify(built)}
const ip = (...args) => execFileSync('ip', args)
ip('link', 'set', 'lo', 'up')
for (let i = 0; i < 40; i++) ip('addr', 'add', \`10.\${i}.0.1/24\`, 'dev', 'lo')
const shows = (address) => guestAddresses().some((a) => a.address === address)
const before = shows('10.39.0.2')
// A second address in a subnet that exists: its LOCAL route is all that changes, past the first page.
ip('addr', 'add', '10.39.0.2/24', 'dev', 'lo')
const added = shows('10.39.0.2')
ip('addr', 'del', '10.39.0.2/24', 'dev', 'lo')
console.log(JSON.stringify({ trie: readFileSync('/proc/net/fib_trie').length, before, added, deleted: shows('10.39.0.2') }))
`

describe.skipIf(!canUnshare)('guest addresses, in a network namespace', () => {
  test('an address added past the first page of /proc/net/fib_trie shows in the next call, and goes', () => {
    if (!existsSync(built)) throw new Error(`${built} is missing. Fix: pnpm -s turbo run build`)
    const run = spawnSync('unshare', ['-n', process.execPath, '--input-type=module', '-e', script], {
      encoding: 'utf8',
    })
    expect(run.status, run.stderr).toBe(0)
    const result = JSON.parse(run.stdout)
    expect(result.trie).toBeGreaterThan(4096)
    expect(result).toMatchObject({ before: false, added: true, deleted: false })
  })
})
