// Where one `vmctl run -- true` spends its time, phase by phase, and an A/B of builds interleaved
// in one run:
//
//   node scripts/bench-cli.mjs                      # this build, ROUNDS=7
//   VARIANTS='[{"name":"main","root":"/tmp/main-copy"},{"name":"this"}]' ROUNDS=7 node scripts/bench-cli.mjs
//
// `root` is a built copy of this repository (default: this one); `env`, variables for its runs
// (e.g. {"VMCTL_EARLY_SUPERVISOR":"0"}: the same build without the early supervisor). Each round runs, for every variant
// (the order alternates), `vmctl --version` (the CLI's own start-up and nothing else) and
// `vmctl run -- true`. A preload (bench-cli-marks.mjs) reads the CLI's vmctl:* performance marks at
// exit, so a run splits into:
//   node start   spawn → the process's time origin (exec of node)
//   bootstrap    → the preload runs (Node's own start-up)
//   load         → the CLI's main module runs (loading the CLI and @vmctl/core)
//   parse        → VM.up() is called (options, vmctl.toml lookup)
//   up           → VM.up() resolves (supervisor, QEMU restore, agent ready)
//   exec         → the command's result is in (the first exec)
//   destroy      → vm.destroy() resolves
//   drain        → the process's exit event (what still held the event loop)
//   reap         → the parent sees the exit
// and the CLI process's CPU time in each phase (`cpu load`, ...): on a loaded host the steadier
// measure of what the CLI itself costs.
// A build without the marks (older than this script) shows only its total.
// TIMELINE=1 also prints one `vmctl run` as a timeline across its processes: the CLI's marks and
// the stamps that the caller's core and the VM's supervisor append to VMCTL_TIMELINE_FILE
// (restore-timeline.ts), each as ms after the CLI was spawned, median [min-max], with the CPU time
// the stamping process (CLI or supervisor) had used by then.
// Prints medians [min-max] in ms, and each variant's medians over the first's; OUT=file also writes
// every sample as JSON. The VMs come from the default template (made first if missing).
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { median } from './bench-helpers.mjs'

const here = fileURLToPath(new URL('..', import.meta.url))
const preload = fileURLToPath(new URL('./bench-cli-marks.mjs', import.meta.url))
const ROUNDS = Number(process.env.ROUNDS ?? 7)
const variants = JSON.parse(process.env.VARIANTS ?? '[{"name":"this build"}]')
const scratch = mkdtempSync(join(tmpdir(), 'vmctl-bench-cli-'))
process.on('exit', () => {
  try {
    rmSync(scratch, { recursive: true, force: true, maxRetries: 5 })
  } catch {} // a supervisor finishing its teardown stamped into it meanwhile
})

/** The CLI's marks (run-command.ts, main.ts) and the phase each ends. */
const STEPS = [
  ['load', 'vmctl:loaded'],
  ['parse', 'vmctl:up'],
  ['up', 'vmctl:ready'],
  ['exec', 'vmctl:exec-done'],
  ['destroy', 'vmctl:destroyed'],
]

let samples = 0

/** Runs the variant's CLI with `args`; resolves with its phases in ms. */
async function sample(variant, args) {
  const cli = join(variant.root ?? here, 'packages/cli/dist/main.js')
  const marksFile = join(scratch, 'marks.json')
  // One file per run: a supervisor that outlives its CLI (it finishes the teardown alone) stamps late.
  const timelineFile = join(scratch, `timeline-${++samples}.jsonl`)
  rmSync(marksFile, { force: true })
  rmSync(timelineFile, { force: true })
  const spawnedAt = performance.timeOrigin + performance.now()
  let stderr = ''
  const code = await new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', preload, cli, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        ...variant.env,
        VMCTL_BENCH_MARKS: marksFile,
        ...(process.env.TIMELINE ? { VMCTL_TIMELINE_FILE: timelineFile } : {}),
      },
    })
    child.stderr.on('data', (chunk) => {
      stderr += chunk
    })
    child.on('exit', resolve)
  })
  const reapedAt = performance.timeOrigin + performance.now()
  if (code !== 0) throw new Error(`vmctl ${args.join(' ')} exited with ${code}:\n${stderr}`)
  const child = JSON.parse(readFileSync(marksFile, 'utf8'))
  const phases = { total: reapedAt - spawnedAt, 'node start': child.timeOrigin - spawnedAt }
  // Each phase ends at its own mark and starts at the last mark before it that the build has; its
  // CPU time (of the CLI process alone) likewise.
  const steps = [
    ['bootstrap', child.preloaded, child.preloadedCpu],
    ...STEPS.map(([phase, mark]) => [phase, child.marks[mark], child.cpuAt?.[mark]]),
    ['drain', child.exit, child.cpuMs],
  ]
  let wall = 0
  let cpu = 0
  for (const [name, end, endCpu] of steps) {
    if (end === undefined) continue
    phases[name] = end - wall
    phases[`cpu ${name}`] = endCpu - cpu
    wall = end
    cpu = endCpu
  }
  phases.cpu = child.cpuMs
  phases.reap = reapedAt - (child.timeOrigin + child.exit)
  // Read after the last round: a supervisor that finishes the teardown alone stamps after the CLI exits.
  if (process.env.TIMELINE) phases.timeline = () => timeline(child, timelineFile, spawnedAt, reapedAt)
  return phases
}

/** One run's moments across its processes: name → { at: ms after spawn, cpu: the stamper's CPU ms }. */
function timeline(child, file, spawnedAt, reapedAt) {
  const moments = { 'cli: spawned': { at: 0 } }
  const cli = (name, at, cpu) => {
    moments[name] = { at: child.timeOrigin + at - spawnedAt, cpu }
  }
  cli('cli: process started', 0, 0)
  cli('cli: bootstrapped', child.preloaded, child.preloadedCpu)
  for (const [name, at] of Object.entries(child.marks))
    cli(`cli: ${name.replace('vmctl:', '')}`, at, child.cpuAt?.[name])
  cli('cli: exit', child.exit, child.cpuMs)
  moments['cli: reaped'] = { at: reapedAt - spawnedAt }
  let lines = []
  try {
    lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
  } catch {}
  for (const line of lines) {
    const name =
      line.what.startsWith('caller:') || line.what.startsWith('supervisor:')
        ? line.what
        : `supervisor: ${line.what}`
    if (moments[name]) continue // the first of a repeated stamp
    moments[name] = { at: line.at - spawnedAt, cpu: line.ownCpu, qemuCpu: Number(line.qemuCpu) || undefined }
  }
  return moments
}

const runs = {}
for (const variant of variants) runs[variant.name] = { version: [], run: [] }
process.stderr.write(`bench-cli: ${ROUNDS} rounds of ${variants.map((v) => v.name).join(', ')}\n`)
for (const variant of variants) await sample(variant, ['run', '--', 'true']) // a template, warm caches
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 ? [...variants].reverse() : variants
  for (const variant of order) runs[variant.name].version.push(await sample(variant, ['--version']))
  for (const variant of order) runs[variant.name].run.push(await sample(variant, ['run', '--', 'true']))
  process.stderr.write('.')
}
process.stderr.write('\n')

const PHASES = ['bootstrap', 'load', 'parse', 'up', 'exec', 'destroy', 'drain']
const NAMES = ['total', 'node start', ...PHASES, 'reap', 'cpu', ...PHASES.map((phase) => `cpu ${phase}`)]
const stats = (values) => ({ median: median(values), min: Math.min(...values), max: Math.max(...values) })
const fmt = ({ median: m, min, max }) => `${m.toFixed(1)} [${min.toFixed(1)}-${max.toFixed(1)}]`
const summary = {}
for (const [kind, title] of [
  ['version', 'vmctl --version'],
  ['run', 'vmctl run -- true'],
]) {
  console.log(`\n${title}, ms, median [min-max], n=${ROUNDS} interleaved`)
  console.log(`| phase | ${variants.map((v) => v.name).join(' | ')} |`)
  console.log(`|---|${variants.map(() => '---').join('|')}|`)
  for (const name of NAMES) {
    const cells = variants.map((variant) => {
      const values = runs[variant.name][kind].map((phases) => phases[name]).filter((v) => v !== undefined)
      if (values.length === 0) return '-'
      summary[`${variant.name} ${kind} ${name}`] = stats(values)
      return fmt(summary[`${variant.name} ${kind} ${name}`])
    })
    console.log(`| ${name} | ${cells.join(' | ')} |`)
  }
  for (const variant of variants.slice(1)) {
    const ratio = (name) =>
      (
        summary[`${variant.name} ${kind} ${name}`].median /
        summary[`${variants[0].name} ${kind} ${name}`].median
      ).toFixed(2)
    console.log(`${variant.name} / ${variants[0].name}: total ${ratio('total')}, cpu ${ratio('cpu')}`)
  }
}
/** Spans of the host's side of one run: [title, from moment, to moment]. */
const SPANS = [
  ['CLI spawned → supervisor spawned', 'cli: spawned', 'caller: supervisor spawned'],
  // The early supervisor's start (main.ts spawns it before it loads any other file of its own).
  ['CLI bootstrapped → supervisor process started', 'cli: bootstrapped', 'supervisor: process started'],
  // The hand-off: more than a few ms means the supervisor was still loading its modules.
  [
    'supervisor spawned → launch received',
    'caller: supervisor spawned',
    'supervisor: launch received (started early)',
  ],
  ['supervisor spawned → QEMU spawned', 'caller: supervisor spawned', 'supervisor: qemu spawned'],
  [
    'supervisor spawned → its modules loaded',
    'caller: supervisor spawned',
    'supervisor: modules loaded, launch.json read',
  ],
  ['supervisor spawned → QMP connected', 'caller: supervisor spawned', 'supervisor: qmp connected'],
  ['supervisor spawned → guest resumed', 'caller: supervisor spawned', 'supervisor: guest resumed (cont)'],
  ['CLI spawned → guest resumed', 'cli: spawned', 'supervisor: guest resumed (cont)'],
  ['ready sent → the CLI has it', 'supervisor: ready sent', 'cli: ready'],
  ['exec done → CLI exit', 'cli: exec-done', 'cli: exit'],
  ['exec done → QEMU gone', 'cli: exec-done', 'supervisor: QEMU gone'],
]
if (process.env.TIMELINE) {
  await sleep(3_000) // the last supervisors' teardowns
  for (const variant of variants) {
    const samples = runs[variant.name].run.map((phases) => phases.timeline())
    const names = [...new Set(samples.flatMap((moments) => Object.keys(moments)))]
    const rows = names.map((name) => {
      const of = (key) =>
        samples.map((m) => m[name]?.[key]).filter((v) => v !== undefined && !Number.isNaN(v))
      return { name, at: stats(of('at')), cpu: of('cpu'), qemuCpu: of('qemuCpu') }
    })
    rows.sort((a, b) => a.at.median - b.at.median)
    // Spans taken within each run (not differences of medians): on a loaded host the steadier read.
    console.log(`\n${variant.name}: spans of one run, ms, median [min-max]`)
    for (const [title, from, to] of SPANS) {
      const values = samples.map((m) => m[to]?.at - m[from]?.at).filter((v) => !Number.isNaN(v))
      if (values.length) console.log(`  ${title}: ${fmt(stats(values))}`)
    }
    console.log(
      `\n${variant.name}: one \`vmctl run -- true\`, ms after the CLI was spawned, n=${samples.length}`,
    )
    console.log('| moment | wall, median [min-max] | gap | CPU of the stamping process | QEMU CPU |')
    console.log('|---|---|---|---|---|')
    let last = 0
    for (const row of rows) {
      const gap = row.at.median - last
      last = row.at.median
      const cpu = row.cpu.length ? median(row.cpu).toFixed(1) : ''
      const qemu = row.qemuCpu.length ? median(row.qemuCpu).toFixed(1) : ''
      console.log(`| ${row.name} | ${fmt(row.at)} | ${gap.toFixed(0)} | ${cpu} | ${qemu} |`)
    }
  }
}
if (process.env.OUT) writeFileSync(process.env.OUT, JSON.stringify({ variants, runs, summary }, null, 2))
