// A boot that hangs (QEMU started with its CPUs stopped), with a boot timeout above vitest's
// default 5 s test timeout: it must fail with vmctl's BootTimeoutError, not vitest's timeout.
import { test } from '@vmctl/vitest'

test.override({ vmOptions: { qemuArgs: ['-S'], bootTimeoutMs: 8_000 } })

test('a VM that never boots', async ({ vm }) => {
  await vm.exec('true')
})
