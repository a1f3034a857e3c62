import { expect, test } from '../../src/index.js'

test('a command that fails', async ({ vm }) => {
  await vm.exec('echo "boot note from the test" > /dev/kmsg')
  expect(await vm.exec('echo out; echo err >&2; exit 3', { reject: false })).toSucceed()
})
