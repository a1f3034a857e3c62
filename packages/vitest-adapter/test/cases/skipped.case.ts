import { test } from '../../src/index.js'

test('needs a VM', async ({ vm }) => {
  await vm.exec('true')
})
