import { AgentError, ConfigError, InvalidOptionsError, VmctlError, VmNotFoundError } from '@vmctl/core'
import { describe, expect, test } from 'vitest'
import { exitCodeFor } from './exit-code.js'
import { UsageError } from './usage-error.js'

describe('CLI exit codes', () => {
  test('bad input exits 2', () => {
    expect(exitCodeFor(new UsageError('bad flag'))).toBe(2)
    expect(exitCodeFor(new InvalidOptionsError('a VM named "x" is already running or starting'))).toBe(2)
    expect(exitCodeFor(new ConfigError('/x/vmctl.toml', 1, 'memroy', 'unknown field'))).toBe(2)
    expect(exitCodeFor(new VmNotFoundError('x'))).toBe(2)
    expect(
      exitCodeFor(
        new AgentError('x', 'the working directory /nope does not exist', { grpcCode: 'NOT_FOUND' }),
      ),
    ).toBe(2)
  })

  test('anything else exits 1', () => {
    expect(exitCodeFor(new VmctlError('BOOT_FAILED', 'boom'))).toBe(1)
    expect(exitCodeFor(new AgentError('x', 'Connection dropped', { grpcCode: 'UNAVAILABLE' }))).toBe(1)
    expect(exitCodeFor(new Error('bug'))).toBe(1)
    expect(exitCodeFor(undefined)).toBe(1)
  })
})
