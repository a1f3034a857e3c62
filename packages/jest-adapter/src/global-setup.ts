/**
 * jest `globalSetup`: keeps `useSharedVm()` / `VM.upShared()` VMs from their first use until the run
 * ends (with `@vmctl/jest/global-teardown`). The keeper lives in jest's main process.
 */
import { startSharedVmKeeper } from '@vmctl/core'

const KEY = Symbol.for('vmctl.jest.keeper')

export default async function globalSetup(): Promise<void> {
  ;(globalThis as Record<symbol, unknown>)[KEY] = await startSharedVmKeeper()
}
