import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { runtimeDiskKey } from './runtime-disk.js'

const dir = mkdtempSync(join(tmpdir(), 'runtime-disk-key-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// The node binary is only hashed for the key: a small stand-in does.
function nodeAt(path: string, content: string, mode = 0o755): string {
  mkdirSync(join(path, '..'), { recursive: true })
  writeFileSync(path, content)
  chmodSync(path, mode)
  return path
}

describe('runtime disk key', () => {
  test("is the same for the same node at another path, mode or cache (another runner's $HOME)", () => {
    const key = runtimeDiskKey(nodeAt(join(dir, 'home-a/.nvm/node'), 'node 20'), join(dir, 'home-a/cache'))
    expect(
      runtimeDiskKey(nodeAt(join(dir, 'home-b/bin/node'), 'node 20', 0o644), join(dir, 'home-b/cache')),
    ).toBe(key)
    expect(
      runtimeDiskKey(nodeAt(join(dir, 'home-c/bin/node'), 'node 22'), join(dir, 'home-c/cache')),
    ).not.toBe(key)
  })
})
