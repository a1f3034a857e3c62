// A measure, not a CI test (pnpm -F @vmctl/vitest bench:twenty-vms): 20 tests, each with a fresh VM,
// at vitest's default parallelism (the tests of one file run one after another).
import { expect, test } from '../../src/index.js'

for (let i = 1; i <= 20; i++) {
  test(`fresh VM ${i}`, async ({ vm }) => {
    expect(await vm.exec('true')).toSucceed()
  })
}
