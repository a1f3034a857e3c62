/** @jest-environment @vmctl/jest/environment */
test('a command that fails (environment)', async () => {
  expect(await vm.exec('echo out; echo err >&2; exit 3', { reject: false })).toSucceed()
})
