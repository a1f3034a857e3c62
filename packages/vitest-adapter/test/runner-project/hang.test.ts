// A boot that hangs (QEMU waits for a migration that never comes: its vCPUs never run), with a
// boot timeout above vitest's default 5 s test timeout: it must fail with vmctl's own error (the
// hung-guest watch's, or BootTimeoutError), not vitest's timeout.
import { test } from '@vmctl/vitest'

test.override({ vmOptions: { qemuArgs: ['-incoming', 'defer'], bootTimeoutMs: 8_000 } })

test('a VM that never boots', async ({ vm }) => {
  await vm.exec('true')
})
