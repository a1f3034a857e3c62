const { useVm } = require('@vmctl/jest')

const vm = useVm()
test('needs a VM (helpers)', async () => {
  await vm.exec('true')
})
