import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { beforeAll } from 'vitest'
import type { spawnThroughSpawner } from '../guest/spawner.js'

/**
 * The built spawner (native/spawner.c) on the host, driven by spawner.ts as the agent drives it:
 * call at a test file's top level; the returned function gives `spawnThroughSpawner` once the
 * file's `beforeAll` has pointed spawner.ts at the built binary.
 */
export function useBuiltSpawner(): () => typeof spawnThroughSpawner {
  const built = fileURLToPath(new URL('../../dist/vmctl-spawner', import.meta.url))
  let spawn: typeof spawnThroughSpawner | undefined
  beforeAll(async () => {
    if (!existsSync(built)) throw new Error(`${built} is missing. Fix: pnpm -s turbo run build`)
    process.env.vmctl_spawner = built
    spawn = (await import('../guest/spawner.js')).spawnThroughSpawner
  })
  return () => spawn!
}
