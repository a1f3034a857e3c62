// A second file beside skipped.case.ts: a run of two files (two workers) prints its skip line once.
import { test } from '../../src/index.js'

test('needs a VM too', async ({ vm }) => {
  await vm.exec('true')
})
