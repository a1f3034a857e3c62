import { execFile } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { expect, test } from 'vitest'

const run = promisify(execFile)
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
const project = fileURLToPath(new URL('../tsconfig.typecheck.json', import.meta.url))

// jest-types.typecheck.ts calls the matchers on both kinds of jest `expect` and expects errors on
// misuse: it compiles only with the declarations in jest-types.ts in place.
test('the VM matchers type-check on jest expect (@jest/globals and @types/jest)', async () => {
  const result = await run(process.execPath, [tsc, '-p', project], { timeout: 120_000 }).catch(
    (error: { stdout?: string; code?: number }) => error,
  )
  expect(result.stdout ?? '').toBe('')
}, 150_000)
