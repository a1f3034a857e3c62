// The package README's example, run by src/runner-versions.vm.test.ts in a project of its own with
// each supported vitest and the default config (testTimeout 5 s): the VM's boot must not count.
import { expect, test } from '@vmctl/vitest'

test.override({ vmOptions: { memoryMiB: 512 } }) // for every test of this file

test('a bridge in a fresh VM (vm)', async ({ vm }) => {
  expect(await vm.exec('ip link add br0 type bridge && ip link set br0 up')).toSucceed()
  await expect(vm).toHaveProcess('vmctl-agent')
  expect(await vm.exec('ip -br link show br0')).toHaveStdout(/^br0\s/)
})
