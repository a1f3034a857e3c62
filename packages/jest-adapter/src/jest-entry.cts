// The entry jest loads into a test file (CommonJS). jest runs test files in a sandbox with its own
// module loader, which cannot load ES modules without --experimental-vm-modules; so the code that
// does the work is loaded by Node's own loader (require of an ES module: Node 20.19+), and only
// this shim runs in the sandbox, handing over the file's jest globals.

import type * as Helpers from './helpers.js'
import { hostRequire } from './host-require.cjs'
// Typed through jest-types.ts, so that the matchers' declarations come with this entry's types.
import type { CommonJsEntry } from './jest-types.js'

const helpers = hostRequire(__filename)('./helpers.js') as typeof Helpers
const bound = helpers.bindToJest(globalThis as unknown as Helpers.JestGlobals, globalThis)
bound.installMatchers()

const entry: CommonJsEntry = { ...bound, vmMatchers: helpers.vmMatchers }
export = entry
