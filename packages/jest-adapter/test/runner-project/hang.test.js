// A boot that hangs (QEMU started with its CPUs stopped), with a boot timeout above jest's default
// 5 s: it must fail with vmctl's BootTimeoutError, not jest's timeout.
const { useVm } = require('@vmctl/jest')

describe('a VM that never boots (vm)', () => {
  const vm = useVm({ qemuArgs: ['-S'], bootTimeoutMs: 8_000 })

  test('fails with the boot timeout', async () => {
    await vm.exec('true')
  })
})
