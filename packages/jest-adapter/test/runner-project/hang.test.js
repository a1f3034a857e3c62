// A boot that hangs (QEMU waits for a migration that never comes: its vCPUs never run), with a
// boot timeout above jest's default 5 s: it must fail with vmctl's own error (the hung-guest
// watch's, or BootTimeoutError), not jest's timeout.
const { useVm } = require('@vmctl/jest')

describe('a VM that never boots (vm)', () => {
  const vm = useVm({ qemuArgs: ['-incoming', 'defer'], bootTimeoutMs: 8_000 })

  test('fails with the boot timeout', async () => {
    await vm.exec('true')
  })
})
