// What a container cannot give a test: a kernel of its own, with root in it. One VM serves this
// file (`fileVm`); each test works in its own namespace, cgroup or container.
import { expect, test } from '@vmctl/vitest'
import { describe } from 'vitest'

describe('kernel features (vm)', () => {
  test('a veth pair into a network namespace', async ({ fileVm: vm }) => {
    await vm.exec(`
      ip netns add blue
      ip link add veth0 type veth peer name veth1 netns blue
      ip addr add 10.99.0.1/24 dev veth0 && ip link set veth0 up
      ip -n blue addr add 10.99.0.2/24 dev veth1 && ip -n blue link set veth1 up`)
    await expect(vm).toHaveIpAddress('10.99.0.1/24')
    expect(await vm.exec('ip netns exec blue busybox ping -c 1 -W 5 10.99.0.1')).toSucceed()
    expect(await vm.exec('ip -n blue -br addr show veth1')).toHaveStdout(/10\.99\.0\.2\/24/)
  })

  test('an address on lo', async ({ fileVm: vm }) => {
    await vm.exec('ip addr add 192.0.2.10/32 dev lo')
    await expect(vm).toHaveIpAddress('192.0.2.10')
  })

  test('a cgroup v2 memory limit kills what exceeds it', async ({ fileVm: vm }) => {
    await vm.exec(`
      echo +memory > /sys/fs/cgroup/cgroup.subtree_control
      mkdir /sys/fs/cgroup/capped
      echo 32M > /sys/fs/cgroup/capped/memory.max
      echo 0 > /sys/fs/cgroup/capped/memory.swap.max`)
    // `tail` of an endless line keeps the line in memory: it grows until the limit kills it.
    const hog = await vm.exec('echo $$ > /sys/fs/cgroup/capped/cgroup.procs && exec tail /dev/zero', {
      reject: false,
      timeoutMs: 60_000,
    })
    expect(hog.signal).toBe('SIGKILL')
    await expect(vm).toHaveFile('/sys/fs/cgroup/capped/memory.events', /^oom_kill [1-9]/m)
  })

  test('a container run by runc from a tiny rootfs', async ({ fileVm: vm }) => {
    // The rootfs: a static busybox and its links. The bundle's config comes from `runc spec`.
    await vm.exec(`
      mkdir -p /tmp/box/rootfs/bin && cp /bin/busybox /tmp/box/rootfs/bin/
      for a in sh echo hostname cat; do ln -s busybox /tmp/box/rootfs/bin/$a; done
      cd /tmp/box && runc spec`)
    const config = JSON.parse(await vm.readFile('/tmp/box/config.json'))
    config.process.terminal = false
    config.process.args = ['sh', '-c', 'echo "hello from $(hostname), pid $$"']
    await vm.writeFile('/tmp/box/config.json', JSON.stringify(config))

    const run = await vm.exec('runc run --bundle /tmp/box demo')
    expect(run).toSucceed()
    expect(run).toHaveStdout('hello from runc, pid 1')
  })
})
