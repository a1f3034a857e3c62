/// <reference types="jest" />
// Compiled by `pnpm typecheck`, never run: the matchers' types on both kinds of jest `expect`.

import type { ExecResult, VM } from '@vmctl/core'
import { expect as jestGlobalsExpect } from 'expect'
import type {} from './jest-types.js'

declare const vm: VM
declare const result: ExecResult

export async function typecheck(): Promise<void> {
  jestGlobalsExpect(result).toSucceed()
  jestGlobalsExpect(result).not.toFailWith(2)
  jestGlobalsExpect(result).toHaveStdout(/ok/)
  await jestGlobalsExpect(vm).toHaveFile('/etc/hostname', 'vm\n')
  await jestGlobalsExpect(vm).toHaveListeningPort(80)
  // @ts-expect-error: no such matcher
  jestGlobalsExpect(result).toSucced()
  // @ts-expect-error: toFailWith takes an exit code
  jestGlobalsExpect(result).toFailWith('2')

  // @types/jest's global expect
  expect(result).toSucceed()
  await expect(vm).toHaveProcess(/sshd/)
  // @ts-expect-error: no such matcher
  expect(result).toHaveStdoutt('x')
}
