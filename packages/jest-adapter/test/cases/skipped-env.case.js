/** @jest-environment @vmctl/jest/environment */
test('needs a VM (environment)', async () => {
  await vm.exec('true')
})
