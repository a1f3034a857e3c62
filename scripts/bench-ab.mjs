// An A/B of two (or more) builds or settings of vmctl on a fresh VM's first calls, interleaved in
// one run, so that a host loaded by other work loads every side alike.
//
//   VARIANTS='[{"name":"before","root":"/tmp/tree-a","env":{"VMCTL_CACHE_DIR":"/tmp/c"}},
//              {"name":"after","root":"/tmp/tree-b","env":{"VMCTL_CACHE_DIR":"/tmp/c"}}]' \
//   ROUNDS=6 node scripts/bench-ab.mjs
//
// `root` is a built copy of this repository (default: this one); `env` is set around each of the
// variant's VM.up() calls (a VMCTL_CACHE_DIR of its own keeps a setting the template key does not
// cover from sharing templates). Each variant makes its template first, then every round runs
// each variant once (the order alternates): VM.up() to ready, three exec(['true']), an info(), a
// small readFile(), then CALLS more of each. Every phase is timed in wall time and in CPU time of
// the VM's QEMU (all its threads, /proc/PID/task/*/schedstat), of its supervisor and of this
// process. On a busy host QEMU's CPU time is the steadier measure of the guest's own work: the
// wall time also counts the time the host gave to others.
//
// Prints medians [min-max] per phase and the ratios of each variant to the first; OUT=file also
// writes every sample as JSON.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpuMs, ownCpuMs, withEnv } from './bench-helpers.mjs'

const here = fileURLToPath(new URL('..', import.meta.url))
const ROUNDS = Number(process.env.ROUNDS ?? 5)
const CALLS = Number(process.env.CALLS ?? 10)
const variants = JSON.parse(process.env.VARIANTS ?? '[{"name":"this build","env":{}}]')
for (const variant of variants) {
  const dist = join(variant.root ?? here, 'packages/core/dist')
  variant.VM = (await import(join(dist, 'index.js'))).VM
  variant.runtimeDir = (await import(join(dist, 'paths.js'))).runtimeDir
}

const now = () => performance.now()

const phases = ['ready', 'exec1', 'exec2', 'exec3', 'info1', 'read1', 'info', 'read', 'exec']
const measures = ['wall', 'qemu', 'supervisor', 'caller']
const samples = Object.fromEntries(
  variants.map((v) => [
    v.name,
    Object.fromEntries(phases.map((p) => [p, Object.fromEntries(measures.map((m) => [m, []]))])),
  ]),
)

for (const variant of variants) {
  const started = now()
  await withEnv(variant.env ?? {}, async () => (await variant.VM.up()).destroy())
  process.stderr.write(`${variant.name}: template ready, first VM.up() ${(now() - started).toFixed(0)} ms\n`)
}

async function round(variant) {
  const into = samples[variant.name]
  let pids = { qemu: 0, supervisor: 0 }
  const read = () => ({
    wall: now(),
    qemu: cpuMs(pids.qemu),
    supervisor: cpuMs(pids.supervisor),
    caller: ownCpuMs(),
  })
  let mark = read()
  const take = (phase, calls = 1) => {
    const at = read()
    for (const m of measures) into[phase][m].push((at[m] - mark[m]) / calls)
    mark = read()
  }
  const vm = await variant.VM.up()
  try {
    const status = JSON.parse(readFileSync(join(variant.runtimeDir(), 'vms', vm.name, 'status.json'), 'utf8'))
    pids = { qemu: status.qemuPid, supervisor: status.pid }
    take('ready')
    for (const phase of ['exec1', 'exec2', 'exec3']) {
      await vm.exec(['true'])
      take(phase)
    }
    await vm.info()
    take('info1')
    await vm.readFile('/etc/hostname')
    take('read1')
    for (let i = 0; i < CALLS; i++) await vm.info()
    take('info', CALLS)
    for (let i = 0; i < CALLS; i++) await vm.readFile('/etc/hostname')
    take('read', CALLS)
    for (let i = 0; i < CALLS; i++) await vm.exec(['true'])
    take('exec', CALLS)
  } finally {
    await vm.destroy()
  }
  const last = (p) => `${into[p].wall.at(-1).toFixed(0)}/${into[p].qemu.at(-1).toFixed(0)}`
  process.stderr.write(
    `  ${variant.name}: ready ${last('ready')}, exec1 ${last('exec1')}, info1 ${last('info1')}, read1 ${last('read1')} (wall/QEMU CPU ms)\n`,
  )
}

for (let r = 0; r < ROUNDS; r++) {
  process.stderr.write(`round ${r + 1}\n`)
  for (const variant of r % 2 ? [...variants].reverse() : variants)
    await withEnv(variant.env ?? {}, () => round(variant))
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
const cell = (values) =>
  `${median(values).toFixed(1)} [${Math.min(...values).toFixed(0)}-${Math.max(...values).toFixed(0)}]`
const lines = []
for (const variant of variants) {
  lines.push(`${variant.name} (n=${ROUNDS}; ms, median [min-max]; per call for info, read, exec):`)
  lines.push(`  phase | wall | QEMU CPU | supervisor CPU | caller CPU`)
  for (const p of phases)
    lines.push(`  ${p} | ${measures.map((m) => cell(samples[variant.name][p][m])).join(' | ')}`)
}
const [first, ...others] = variants
for (const variant of others) {
  const ratio = (p, m) => (median(samples[variant.name][p][m]) / median(samples[first.name][p][m])).toFixed(2)
  lines.push(
    `${variant.name} / ${first.name} (wall, QEMU CPU): ${phases.map((p) => `${p} ${ratio(p, 'wall')}, ${ratio(p, 'qemu')}`).join('; ')}`,
  )
}
console.log(lines.join('\n'))
if (process.env.OUT) {
  const described = variants.map(({ name, root, env }) => ({ name, root, env }))
  writeFileSync(
    process.env.OUT,
    JSON.stringify({ date: new Date().toISOString(), variants: described, samples }),
  )
}
process.exit(0)
