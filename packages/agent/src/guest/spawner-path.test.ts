import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, test } from 'vitest'
import type { spawnThroughSpawner as SpawnThroughSpawner } from './spawner.js'

// The built spawner (native/spawner.c) on the host, as spawner.test.ts drives it.
const built = fileURLToPath(new URL('../../dist/vmctl-spawner', import.meta.url))
let spawnThroughSpawner: typeof SpawnThroughSpawner
beforeAll(async () => {
  if (!existsSync(built)) throw new Error(`${built} is missing. Fix: pnpm -s turbo run build`)
  process.env.vmctl_spawner = built
  ;({ spawnThroughSpawner } = await import('./spawner.js'))
})
const work = mkdtempSync(join(tmpdir(), 'vmctl-spawner-path-test-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

test('a PATH entry that is a directory of the name is EACCES (126), as execvp says, not "not found"', async () => {
  mkdirSync(join(work, 'bin1', 'no-such-command-xyz'), { recursive: true })
  const command = spawnThroughSpawner(
    'no-such-command-xyz',
    [],
    { PATH: `${work}/bin1:/usr/bin:/bin` },
    false,
    {
      root: undefined,
      cwd: '/',
    },
  )
  const error = await new Promise<{ code?: string; stage?: string }>((resolve) =>
    command?.on('error', resolve),
  )
  expect({ code: error.code, stage: error.stage }).toEqual({ code: 'EACCES', stage: 'exec' })
})
