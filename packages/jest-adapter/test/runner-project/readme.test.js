// The package README's example, run by src/runner-versions.vm.test.ts in a CommonJS project of its
// own with each supported jest and no jest config (testTimeout 5 s): the VM's boot must not count.
const { useVm } = require('@vmctl/jest')

describe('a fresh VM per test (vm)', () => {
  const vm = useVm({ memoryMiB: 512 })

  test('a bridge', async () => {
    expect(await vm.exec('ip link add br0 type bridge && ip link set br0 up')).toSucceed()
    await expect(vm).toHaveProcess('vmctl-agent')
  })
})
