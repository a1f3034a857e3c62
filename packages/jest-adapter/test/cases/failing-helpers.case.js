const { useVm } = require('@vmctl/jest')

const vm = useVm()
test('a command that fails (helpers)', async () => {
  await expect(vm).toHaveListeningPort(4242)
})
