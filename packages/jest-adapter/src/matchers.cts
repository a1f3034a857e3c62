// For jest's setupFilesAfterEach: adds the VM matchers to expect (when tests use the environment's
// global `vm` and do not import @vmctl/jest, which adds them itself). Loaded like jest-entry.cts.

import type * as Testing from '@vmctl/testing'
import { hostRequire } from './host-require.cjs'

const testing = hostRequire(__filename)('@vmctl/testing') as typeof Testing
;(globalThis as unknown as { expect: { extend(m: object): void } }).expect.extend(testing.vmMatchers)
