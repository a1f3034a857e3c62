// The entry for ESM test files (jest with --experimental-vm-modules): the same as jest-entry.cts.

import type * as Helpers from './helpers.js'
import { hostRequire } from './host-require.cjs'

const helpers = hostRequire(import.meta.url)('./helpers.js') as typeof Helpers
const bound = helpers.bindToJest(globalThis as unknown as Helpers.JestGlobals, globalThis)
bound.installMatchers()

export const { useVm, useSharedVm, useSharedNetwork } = bound
export const { vmMatchers } = helpers
// The matchers' types on jest's expect (jest-types.ts).
export type { VmMatchers } from './jest-types.js'
