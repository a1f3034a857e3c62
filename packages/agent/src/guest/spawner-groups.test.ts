import { describe, expect, test } from 'vitest'
import { useBuiltSpawner } from '../test-support/built-spawner.js'
import type { CommandPlace } from './spawner.js'

// The built spawner on the host, driven by spawner.ts as the agent drives it.
const spawner = useBuiltSpawner()

/** `id -G` run through the spawner in this place: its output, or the start's failed stage. */
function groupsIn(place: CommandPlace): Promise<string> {
  const command = spawner()('id', ['-G'], { PATH: '/usr/bin:/bin' }, false, place)
  if (!command) throw new Error('the spawner did not take the command')
  let out = ''
  command.stderr?.resume()
  command.stdout?.on('data', (chunk: Buffer) => {
    out += chunk
  })
  return new Promise((resolve) => {
    command.on('error', (error: Error & { stage?: string }) => resolve(`failed: ${error.stage}`))
    command.on('close', () => resolve(out.trim()))
  })
}

// setgroups needs root: the suite runs as root here and in CI.
describe.skipIf(process.getuid?.() !== 0)('the spawner sets the groups (host, as root)', () => {
  test("the groups the agent sends, with the primary; none of root's when there are none", async () => {
    const place = { root: undefined, cwd: '/', uid: 65534, gid: 65534 }
    // The kernel keeps a process's groups sorted: id lists the primary group, then those.
    expect(await groupsIn({ ...place, groups: [65534, 4242, 50] })).toBe('65534 50 4242')
    expect(await groupsIn(place)).toBe('65534')
    expect(await groupsIn({ ...place, groups: [65534, Number.NaN] })).toBe('failed: user')
  })
})
