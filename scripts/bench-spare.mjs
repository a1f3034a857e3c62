// A test file's VMs with and without a spare (VmOptions.keepSpare, docs/spare-vm.md): TESTS tests
// in a row, each VM.up() → exec(['true']) → exec('ip -br link') → readFile() → destroy(), as a
// `beforeEach`/`afterEach` pair makes them, back to back. The sides run in alternating blocks
// (a spare's pipeline spans the tests of a block; a block ends by letting its last spare go, so
// its wasted restore is counted). Per test: VM.up() → first exec answered, and the whole test;
// per block: wall time and the host's busy CPU time (all processes, /proc/stat).
//
//   TESTS=8 BLOCKS=3 node scripts/bench-spare.mjs
import { readFileSync } from 'node:fs'
import { core, median } from './bench-helpers.mjs'

const { VM } = await core('index.js')
const { releaseSpareVm } = await core('vm/spare-vm.js')
const TESTS = Number(process.env.TESTS ?? 8)
const BLOCKS = Number(process.env.BLOCKS ?? 3)

/** The host's busy CPU time so far, in ms (every CPU; idle and iowait left out). */
function hostBusyMs() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const [user, nice, system, , , irq, softirq, steal] = fields
  const hz = 100
  return ((user + nice + system + irq + softirq + steal) / hz) * 1000
}

const sides = ['off', 'on']
const results = Object.fromEntries(
  sides.map((s) => [s, { firstExec: [], test: [], block: [], busy: [], fromSpare: 0 }]),
)
await (await VM.up()).destroy() // the default template, if there is none yet
for (let block = 0; block < BLOCKS; block++) {
  for (const side of sides) {
    const r = results[side]
    const started = performance.now()
    const busy = hostBusyMs()
    for (let t = 0; t < TESTS; t++) {
      const testStarted = performance.now()
      const vm = await VM.up({ keepSpare: side !== 'off' })
      await vm.exec(['true'])
      r.firstExec.push(performance.now() - testStarted)
      await vm.exec('ip -br link')
      await vm.readFile('/etc/hostname')
      if (vm.fromSpare) r.fromSpare++
      await vm.destroy()
      r.test.push(performance.now() - testStarted)
    }
    await releaseSpareVm()
    r.block.push(performance.now() - started)
    r.busy.push(hostBusyMs() - busy)
    process.stderr.write(
      `block ${block + 1} ${side}: ${(r.block.at(-1) / 1000).toFixed(2)} s, host busy ${(r.busy.at(-1) / 1000).toFixed(2)} s\n`,
    )
  }
}
const fmt = (v) => `${median(v).toFixed(0)} [${Math.min(...v).toFixed(0)}-${Math.max(...v).toFixed(0)}]`
const others = sides.filter((s) => s !== 'off')
console.log(
  `| measure (ms, median [min-max]) | spare off | ${others.map((s) => `spare ${s} | ${s}/off`).join(' | ')} |`,
)
console.log(`|---|---|${others.map(() => '---|---|').join('')}`)
for (const [label, key] of [
  ['VM.up() → first exec answered', 'firstExec'],
  ['one test (up, 3 calls, destroy)', 'test'],
  [`block of ${TESTS} tests, wall`, 'block'],
  [`block of ${TESTS} tests, host busy CPU`, 'busy'],
]) {
  const off = results.off[key]
  const cells = others.map(
    (s) => `${fmt(results[s][key])} | ${(median(results[s][key]) / median(off)).toFixed(2)}`,
  )
  console.log(`| ${label} | ${fmt(off)} | ${cells.join(' | ')} |`)
}
console.log(
  `VMs taken from a spare, of ${TESTS * BLOCKS}: ${sides.map((s) => `${s} ${results[s].fromSpare}`).join(', ')}`,
)
