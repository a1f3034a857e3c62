import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, test } from 'vitest'
import { useBuiltSpawner } from '../test-support/built-spawner.js'

// The built spawner on the host, driven by spawner.ts as the agent drives it.
const spawner = useBuiltSpawner()
const work = mkdtempSync(join(tmpdir(), 'vmctl-spawner-path-test-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

test('a PATH entry that is a directory of the name is EACCES (126), as execvp says, not "not found"', async () => {
  mkdirSync(join(work, 'bin1', 'no-such-command-xyz'), { recursive: true })
  const command = spawner()('no-such-command-xyz', [], { PATH: `${work}/bin1:/usr/bin:/bin` }, false, {
    root: undefined,
    cwd: '/',
  })
  const error = await new Promise<{ code?: string; stage?: string }>((resolve) =>
    command?.on('error', resolve),
  )
  expect({ code: error.code, stage: error.stage }).toEqual({ code: 'EACCES', stage: 'exec' })
})
