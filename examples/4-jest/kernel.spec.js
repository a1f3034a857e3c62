/** @jest-environment-options {"vm": {"env": {"GREETING": "hello"}}} */
// One VM for this file, from the environment: the global `vm`; its options are in the docblock.
describe('kernel features under jest (vm)', () => {
  test('a veth pair into a network namespace', async () => {
    await vm.exec(`
      ip netns add red
      ip link add veth0 type veth peer name veth1 netns red
      ip addr add 10.98.0.1/24 dev veth0 && ip link set veth0 up
      ip -n red addr add 10.98.0.2/24 dev veth1 && ip -n red link set veth1 up`)
    await expect(vm).toHaveIpAddress('10.98.0.1/24')
    expect(await vm.exec('ip netns exec red busybox ping -c 1 -W 5 10.98.0.1')).toSucceed()
  })

  test('exit codes and output', async () => {
    expect(await vm.exec('echo hello; exit 3', { reject: false })).toFailWith(3)
    expect(await vm.exec('uname -s')).toHaveStdout('Linux')
    expect(await vm.exec('echo $GREETING')).toHaveStdout('hello')
    await expect(vm.exec('exit 4')).rejects.toFailWith(4)
  })

  test('files', async () => {
    await vm.writeFile('/etc/app.conf', 'x=1\n')
    await expect(vm).toHaveFile('/etc/app.conf', 'x=1')
    await expect(vm).not.toHaveFile('/etc/missing.conf')
  })
})
