import { useSharedNetwork, useSharedVm, useVm } from '@vmctl/jest'

describe('ESM: a shared VM on a shared network (vm)', () => {
  const networkName = process.env.SMOKE_NETWORK_NAME ?? 'jest-esm-smoke-net'
  const net = useSharedNetwork(networkName)
  const vm = useSharedVm(process.env.SMOKE_SHARED_NAME ?? 'jest-esm-smoke', { networks: [networkName] })

  test('exec and the matchers', async () => {
    expect(await vm.exec('echo from an ES module')).toHaveStdout('from an ES module')
    await expect(vm).toHaveProcess('vmctl-agent')
    await expect(vm).not.toHaveListeningPort(1)
  })

  test('the network handle: members, and a link taken down and brought back', async () => {
    expect((await net.members()).map((member) => member.member)).toEqual([vm.name])
    const carrier = async () =>
      (await vm.exec('cat /sys/class/net/$(ls /sys/class/net | grep -v lo | tail -1)/carrier')).stdout.trim()
    await net.disconnect(vm)
    expect(await carrier()).toBe('0')
    await net.connect(vm)
    expect(await carrier()).toBe('1')
  })
})

describe('ESM: useVm without QEMU', () => {
  // Loaded but never used when VMs run: proves the helpers load in an ES module test file.
  test('is a function', () => expect(typeof useVm).toBe('function'))
})
