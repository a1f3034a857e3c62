/** jest `globalTeardown`: ends the shared VMs that `@vmctl/jest/global-setup` kept. */
import type { SharedVmKeeper } from '@vmctl/core'

const KEY = Symbol.for('vmctl.jest.keeper')

export default async function globalTeardown(): Promise<void> {
  const keeper = (globalThis as Record<symbol, SharedVmKeeper | undefined>)[KEY]
  await keeper?.close()
}
