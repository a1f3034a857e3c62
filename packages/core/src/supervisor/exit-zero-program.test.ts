import { execFileSync } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { exitZeroProgram } from './exit-zero-program.js'

describe('exitZeroProgram', () => {
  test.runIf(process.arch === 'x64' && process.platform === 'linux')('runs and exits 0', () => {
    const dir = mkdtempSync(join(tmpdir(), 'exit-zero-'))
    try {
      const path = join(dir, 'program')
      writeFileSync(path, exitZeroProgram())
      chmodSync(path, 0o700)
      // execFileSync throws on a failed start or a non-zero exit status.
      expect(execFileSync(path, { encoding: 'utf8' })).toBe('')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
