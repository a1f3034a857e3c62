// The exec round trip against the guest's own fork+exec of the same binary (issue 16: ≤ 1.1x), and
// how the agent starts a command, A/B'd in ONE VM: the request variable vmctl_exec_via picks the
// path per call (packages/agent/src/guest/command-start.ts), so no template's difference can skew it.
//
//   ROUNDS=20 PER_ROUND=5 node scripts/bench-exec.mjs
//
// Each round makes PER_ROUND calls of every side, the sides alternating call by call, then one
// bash loop in the guest that forks and execs /bin/true LOOP times (the floor, as bench.mjs takes
// it). Sides: `spawner` (the default: the spawner places the command and execs it, PATH looked up
// in C), `spawner /usr/bin/true` (the same without the PATH lookup), `spawner fork` (the spawner
// forks where it vforks), `spawner started apart` (the spawner says the command started at once,
// not with its first output or exit: the path before), `spawner pipes` (the agent opens the command's output pipes and reads them
// itself, where the spawner relays them: the path before the relay), `nsenter` (the spawner starts
// busybox's nsenter, which places the command and execs it: the path before), `child_process` (no
// spawner: the fallback), and `info()` (a call that starts no process); `head 4 MiB` and
// `head 4 MiB pipes` (4 MiB of output, relayed or read by the agent) only when SIDES names them.
// Every call is timed in wall time and in CPU time of the VM's QEMU (all threads). SIDES=a,b picks
// sides by name. The floor is also timed on the host's clock (the loop's exec less an empty loop's),
// as the round trips are, and in QEMU CPU (the loop's exec less the empty loop's, per start): on a
// loaded host a fork+exec in a loop waits for a vCPU thread as much as it works, so wall time says
// more about the load than about the exec; the QEMU CPU ratio is the one to compare across runs.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { core, cpuMs, median } from './bench-helpers.mjs'

const ROUNDS = Number(process.env.ROUNDS ?? 20)
const PER_ROUND = Number(process.env.PER_ROUND ?? 5)
const LOOP = Number(process.env.LOOP ?? 20)
const WARM_UP = Number(process.env.WARM_UP ?? 10)

const { VM } = await core('index.js')
const { runtimeDir } = await core('paths.js')

const allSides = [
  { name: 'spawner', call: (vm) => vm.exec(['true']) },
  { name: 'spawner /usr/bin/true', call: (vm) => vm.exec(['/usr/bin/true']) },
  { name: 'spawner fork', call: (vm) => vm.exec(['true'], { env: { vmctl_exec_via: 'fork' } }) },
  {
    name: 'spawner started apart',
    call: (vm) => vm.exec(['true'], { env: { vmctl_exec_via: 'started-apart' } }),
  },
  // vm.spawn(), which gets the pid: a short command's start, output and exit in one port write
  // when the spawner says the start with the exit (not in the default sides).
  { name: 'spawn()', call: (vm) => vm.spawn(['true']).wait(), extra: true },
  {
    name: 'spawn() started apart',
    call: (vm) => vm.spawn(['true'], { env: { vmctl_exec_via: 'started-apart' } }).wait(),
    extra: true,
  },
  { name: 'spawner pipes', call: (vm) => vm.exec(['true'], { env: { vmctl_exec_via: 'pipes' } }) },
  { name: 'nsenter', call: (vm) => vm.exec(['true'], { env: { vmctl_exec_via: 'nsenter' } }) },
  { name: 'child_process', call: (vm) => vm.exec(['true'], { env: { vmctl_exec_via: 'child_process' } }) },
  { name: 'info()', call: (vm) => vm.info() },
  // Output through the relay against the agent reading the pipes (not in the default sides).
  { name: 'head 4 MiB', call: (vm) => vm.exec(['head', '-c', '4194304', '/dev/zero']), extra: true },
  {
    name: 'head 4 MiB pipes',
    call: (vm) => vm.exec(['head', '-c', '4194304', '/dev/zero'], { env: { vmctl_exec_via: 'pipes' } }),
    extra: true,
  },
]
const picked = process.env.SIDES?.split(',')
const sides = picked ? allSides.filter((s) => picked.includes(s.name)) : allSides.filter((s) => !s.extra)
const samples = Object.fromEntries(sides.map((s) => [s.name, { wall: [], qemu: [] }]))
const floor = []
const hostFloor = []
const qemuFloor = []

const loadAtStart = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
const vm = await VM.up()
try {
  const status = JSON.parse(readFileSync(join(runtimeDir(), 'vms', vm.name, 'status.json'), 'utf8'))
  const qemuPid = status.qemuPid
  const where = (await vm.exec('readlink -f /bin/true; command -v true; ls -l /bin | head -c 60')).stdout
  process.stderr.write(
    `VM ${vm.name} (template ${status.template?.made ? 'made' : status.template ? 'restored' : 'none'}); /bin/true: ${where.split('\n')[0]}\n`,
  )
  for (let i = 0; i < WARM_UP; i++) for (const side of sides) await side.call(vm)
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < PER_ROUND; i++) {
      for (const side of round % 2 ? [...sides].reverse() : sides) {
        const cpu = cpuMs(qemuPid)
        const started = performance.now()
        await side.call(vm)
        samples[side.name].wall.push(performance.now() - started)
        samples[side.name].qemu.push(cpuMs(qemuPid) - cpu)
      }
    }
    // An arithmetic loop: nothing forks inside `time` but the n starts of /bin/true.
    const loop = (n) => ['bash', '-c', `TIMEFORMAT=%R; time for ((i = 0; i < ${n}; i++)); do /bin/true; done`]
    let cpu = cpuMs(qemuPid)
    let started = performance.now()
    const { stderr } = await vm.exec(loop(LOOP))
    const loopMs = performance.now() - started
    const loopCpu = cpuMs(qemuPid) - cpu
    floor.push((Number(stderr.trim()) * 1000) / LOOP)
    // The same loop timed on the host's clock (as the round trips are) and in QEMU CPU, less an
    // empty loop's call: what is left is the n starts of /bin/true.
    cpu = cpuMs(qemuPid)
    started = performance.now()
    await vm.exec(loop(0))
    hostFloor.push((loopMs - (performance.now() - started)) / LOOP)
    qemuFloor.push((loopCpu - (cpuMs(qemuPid) - cpu)) / LOOP)
    process.stderr.write(
      `round ${round + 1}/${ROUNDS}: ${sides.map((s) => `${s.name} ${samples[s.name].wall.at(-1).toFixed(1)}`).join(', ')}, floor ${floor.at(-1).toFixed(1)} ms\n`,
    )
  }
} finally {
  await vm.destroy()
}

const fmt = (values) =>
  `${median(values).toFixed(1)} [${Math.min(...values).toFixed(1)}-${Math.max(...values).toFixed(1)}]`
const floorMedian = median(floor)
console.log(
  `\n${ROUNDS} rounds x ${PER_ROUND} calls a side, one VM, sides alternating; load ${loadAtStart} at the start, ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} at the end`,
)
const qemuFloorMedian = median(qemuFloor)
console.log('| side | wall ms, median [min-max] | / guest fork+exec | QEMU CPU ms | / floor QEMU CPU |')
console.log('| --- | --- | --- | --- | --- |')
for (const side of sides) {
  const { wall, qemu } = samples[side.name]
  console.log(
    `| ${side.name} | ${fmt(wall)} | ${(median(wall) / floorMedian).toFixed(2)}x | ${fmt(qemu)} | ${(median(qemu) / qemuFloorMedian).toFixed(2)}x |`,
  )
}
console.log(
  `| the guest's own fork+exec of /bin/true (bash loop of ${LOOP}), ${ROUNDS} runs | ${fmt(floor)} | 1.00x | ${fmt(qemuFloor)} | 1.00x |`,
)
console.log(
  `| the same loop on the host's clock, less an empty loop's exec, ${ROUNDS} runs | ${fmt(hostFloor)} | ${(median(hostFloor) / floorMedian).toFixed(2)}x | | |`,
)
// Paired: each call against the call of its base side just before or after it in the same round
// (the same moment's load), the median of those ratios: steadier than a ratio of medians when the
// host's load moves during the run. The base is the first side, or with PAIRS=1 the side before
// it in SIDES (sides taken two by two: base, variant, base, variant).
for (const [index, side] of sides.entries()) {
  const base =
    process.env.PAIRS === '1' ? (index % 2 ? sides[index - 1] : undefined) : index ? sides[0] : undefined
  if (!base) continue
  const paired = (metric) =>
    median(samples[side.name][metric].map((value, k) => value / samples[base.name][metric][k])).toFixed(2)
  console.log(
    `${side.name} / ${base.name}, paired call by call: ${paired('wall')}x wall, ${paired('qemu')}x QEMU CPU`,
  )
}
for (const side of sides)
  console.log(
    `${side.name} / the host-clock floor = ${(median(samples[side.name].wall) / median(hostFloor)).toFixed(2)}x wall, ${(median(samples[side.name].qemu) / qemuFloorMedian).toFixed(2)}x QEMU CPU`,
  )
