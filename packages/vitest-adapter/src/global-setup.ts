/**
 * Add to vitest's `globalSetup` to keep `VM.upShared()` / `sharedVm()` VMs from their first use to
 * the end of the run: the keeper lives in vitest's main process and holds a lease on each of them.
 *
 * ```ts
 * export default defineConfig({ test: { globalSetup: ['@vmctl/vitest/global-setup'] } })
 * ```
 */
import { startSharedVmKeeper } from '@vmctl/core'

export default async function setup(): Promise<() => Promise<void>> {
  const keeper = await startSharedVmKeeper()
  return () => keeper.close()
}
