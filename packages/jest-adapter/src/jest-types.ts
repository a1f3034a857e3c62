/**
 * The VM matchers on jest's `expect`, for TypeScript: `expect` from @jest/globals (the `expect`
 * package's Matchers) and the global `expect` of @types/jest (the `jest` namespace). Both entries'
 * declarations refer to this file, so importing @vmctl/jest brings these along.
 */

import type { VmMatchers } from '@vmctl/testing'
import type {} from 'expect'
import type { bindToJest, vmMatchers } from './helpers.js'

declare module 'expect' {
  interface Matchers<R extends void | Promise<void>, T = unknown> extends VmMatchers<R> {}
}

declare global {
  namespace jest {
    // biome-ignore lint/complexity/noBannedTypes: the type parameters must match @types/jest's to merge.
    interface Matchers<R, T = {}> extends VmMatchers<R> {}
  }
}

export type { VmMatchers }

/** What the CommonJS entry exports (typed here so its declarations bring the ones above). */
export type CommonJsEntry = ReturnType<typeof bindToJest> & { vmMatchers: typeof vmMatchers }
