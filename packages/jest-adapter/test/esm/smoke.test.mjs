import { useSharedVm, useVm } from '@vmctl/jest'

describe('ESM: a shared VM (vm)', () => {
  const vm = useSharedVm(process.env.SMOKE_SHARED_NAME ?? 'jest-esm-smoke')

  test('exec and the matchers', async () => {
    expect(await vm.exec('echo from an ES module')).toHaveStdout('from an ES module')
    await expect(vm).toHaveProcess('vmctl-agent')
    await expect(vm).not.toHaveListeningPort(1)
  })
})

describe('ESM: useVm without QEMU', () => {
  // Loaded but never used when VMs run: proves the helpers load in an ES module test file.
  test('is a function', () => expect(typeof useVm).toBe('function'))
})
