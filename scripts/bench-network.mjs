// `pnpm bench:network`: what a network costs, measured in one run so that ratios hold on a noisy host.
//
//   boot       3 VMs up at once on one network (VM.up({ networks: [net] })) against the same 3 VMs
//              without one, each until its first exec answered, ROUNDS times interleaved; templates
//              warm for both (one discarded round)
//   rtt        ping between two members (50 pings, 0.1 s apart): the median of the averages
//   throughput one TCP stream of THROUGHPUT_MB between two members (python3 in the guests)
//   transport  the same rtt and throughput over QEMU's own multicast socket netdev
//              (`-netdev socket,mcast=`, no switch: the kernel copies the frames), the other
//              rootless transport that needs no process of ours, for the choice in docs/networks.md
//
// Options: ROUNDS=n (default 3), THROUGHPUT_MB=n (default 32). Results go to bench-results/network.json.
import { randomInt } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const { VM, VmNetwork } = await import(join(root, 'packages/core/dist/index.js'))
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const THROUGHPUT_MB = Number(process.env.THROUGHPUT_MB ?? 32)

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const round = (x, digits = 0) => Math.round(x * 10 ** digits) / 10 ** digits

/** 3 VMs at once, each up and its first command answered (a restored VM's first exec warms its agent). */
async function upThree(options) {
  const started = performance.now()
  const vms = await Promise.all(
    [0, 1, 2].map(async () => {
      const vm = await VM.up(options())
      await vm.exec(['true'])
      return vm
    }),
  )
  const ms = performance.now() - started
  return { vms, ms }
}

async function bootRounds() {
  const plain = []
  const member = []
  for (let i = 0; i <= ROUNDS; i++) {
    const a = await upThree(() => ({}))
    await Promise.all(a.vms.map((vm) => vm.destroy()))
    const net = await VmNetwork.create()
    const b = await upThree(() => ({ networks: [net] }))
    await Promise.all(b.vms.map((vm) => vm.destroy()))
    await net.close()
    // The first round warms the templates of both definitions; it is not counted.
    if (i > 0) {
      plain.push(a.ms)
      member.push(b.ms)
    }
    console.log(
      `boot round ${i}: 3 plain ${round(a.ms)} ms, 3 members ${round(b.ms)} ms${i ? '' : ' (warm-up)'}`,
    )
  }
  return {
    plainMs: round(median(plain)),
    membersMs: round(median(member)),
    ratio: round(median(member) / median(plain), 2),
  }
}

/** RTT (median of 50 pings' average) and one TCP stream's MB/s, from `from` to `to` at address `ip`. */
async function measurePair(from, to, ip) {
  const pings = await from.exec(`busybox ping -c 50 -i 0.1 -W 3 ${ip}`)
  const rttMs = Number(pings.stdout.match(/min\/avg\/max = [\d.]+\/([\d.]+)\//)?.[1])
  const port = 9000 + randomInt(1000)
  const server = to.exec(
    `python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', ${port})); s.listen(1)
c, _ = s.accept(); n = 0; t = time.monotonic()
while True:
    b = c.recv(1 << 16)
    if not b: break
    n += len(b)
print(n, time.monotonic() - t)"`,
  )
  await from.exec(
    `python3 -c "
import socket, time
for i in range(300):
    try: c = socket.create_connection(('${ip}', ${port})); break
    except OSError: time.sleep(0.1)
chunk = bytes(1 << 16)
for i in range(${THROUGHPUT_MB * 16}): c.sendall(chunk)
c.close()"`,
  )
  const [bytes, seconds] = (await server).stdout.trim().split(' ').map(Number)
  return { rttMs: round(rttMs, 2), mbPerS: round(bytes / 1e6 / seconds, 1) }
}

async function switchPair() {
  const net = await VmNetwork.create()
  const [a, b] = await Promise.all([VM.up({ networks: [net] }), VM.up({ networks: [net] })])
  try {
    return await measurePair(a, b, b.ip(net))
  } finally {
    await Promise.all([a.destroy(), b.destroy()])
    await net.close()
  }
}

/** Two VMs on QEMU's multicast socket netdev: same MAC on the command line (one template), set apart in the guest. */
async function multicastPair() {
  const group = `230.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}:${randomInt(20000, 60000)}`
  const options = {
    qemuArgs: [
      '-netdev',
      `socket,id=mc0,mcast=${group}`,
      '-device',
      'virtio-net-device,netdev=mc0,mac=06:00:00:00:00:01',
    ],
  }
  const [a, b] = await Promise.all([VM.up(options), VM.up(options)])
  try {
    for (const [i, vm] of [a, b].entries()) {
      await vm.exec(`dev=$(grep -l 06:00:00:00:00:01 /sys/class/net/*/address | cut -d/ -f5)
ip link set "$dev" address 02:00:00:00:00:0${i + 1} && ip addr add 10.250.0.${i + 1}/24 dev "$dev" && ip link set "$dev" up`)
    }
    return await measurePair(a, b, '10.250.0.2')
  } finally {
    await Promise.all([a.destroy(), b.destroy()])
  }
}

const started = Date.now()
const boot = await bootRounds()
const viaSwitch = await switchPair()
console.log('switch pair', viaSwitch)
const viaMulticast = await multicastPair()
console.log('multicast pair', viaMulticast)
const results = {
  date: new Date().toISOString(),
  rounds: ROUNDS,
  throughputMb: THROUGHPUT_MB,
  boot,
  switch: viaSwitch,
  multicastSocket: viaMulticast,
  totalS: Math.round((Date.now() - started) / 1000),
}
console.log(JSON.stringify(results, null, 2))
writeFileSync(join(root, 'bench-results/network.json'), `${JSON.stringify(results, null, 2)}\n`)
