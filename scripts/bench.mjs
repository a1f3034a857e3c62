// `pnpm bench`: vmctl's speed, measured in one run so that ratios hold on a noisy machine.
//
// Each round measures, interleaved (one sample of each per round):
//   floor     QEMU spawn → first line of vmctl's init on the serial console (kernel + initramfs,
//             nothing of vmctl's agent): what any VM on this host costs at least
//   cold      VM.up() → agent healthy with templates off (VMCTL_TEMPLATES=0): a cold boot
//   up        VM.up() → agent healthy, restored from the default VM's template (the headline:
//             up / cold, target ≤ 0.1)
//   (cold and up also time their first exec(['true']) answered, the caller's first command)
//   up again  the same right after `up`, in the same process: the next VM of a process that makes
//             VMs one after another (a test file's beforeEach), whose supervisor was started as the
//             last VM was destroyed (vm/spare-supervisor.ts); `up` always pays a fresh supervisor,
//             as a process's first VM does (the cold sample before it runs under another env)
//   spare     VM.up() → first exec answered, taking a parked spare of the default VM (vm/spare-vm.ts:
//             restored, warmed and paused while the rounds before ran; the bench waits for it to
//             park after each sample, so that it runs beside no other measure)
//   run       `vmctl run -- true`, a whole CLI process: boot, exec, destroy
//   in-place  vm.restore(name) of a snapshot of a running VM (hostRoot: false) → next exec
// Then 8 concurrent VM.up() from one template (total, per VM), the memory of an idle restored
// VM's QEMU (PSS: pages shared with the template's RAM file count once), the template's disk.
// Then, on one VM, 200 rounds of an `exec(['true'])`, a `vm.info()` and a small `vm.readFile()`
// round trip (median and p99), and the guest's own fork+exec of /bin/true, timed by bash inside.
//
// Then the agent: 100 concurrent execs per second; push and pull of a 1 GiB file against the same
// bytes over a raw multiplexer channel without the agent's framing (the floor), all on one VM, each
// agent transfer next to its raw one and compared per run (speed and QEMU CPU); and the agent as
// one executable: its size and start-up time against `node agent.cjs`.
//
// Options: ROUNDS=n (default 7), TRANSFER_MB=n (default 1024), TRANSFER_RUNS=n (default 3). Results also go to
// bench-results/latest.json.
import { spawn } from 'node:child_process'
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  core,
  cpuMs,
  floorSample as floorRun,
  floorSetup,
  median,
  rawSink,
  rawSource,
  root,
  timed,
} from './bench-helpers.mjs'

const { VM } = await core('index.js')
const { chooseAccelerator } = await core('host/accelerator.js')
const { cacheDir } = await core('paths.js')
const { VmDirectory, listVms } = await core('supervisor/vm-directory.js')
const { listTemplates } = await core('templates/template-store.js')
const { runtimeDir: runtimeDirectory } = await core('paths.js')
const agentPackage = await import(join(root, 'packages/agent/dist/index.js'))

// Spare VMs (vm/spare-vm.ts) only where spareSample() turns them on: every other measure is of a
// VM.up() that boots its own VM.
process.env.VMCTL_SPARE_VM = '0'
const ROUNDS = Number(process.env.ROUNDS ?? 7)
const TRANSFER_BYTES = Number(process.env.TRANSFER_MB ?? 1024) * 1024 * 1024
const TRANSFER_RUNS = Number(process.env.TRANSFER_RUNS ?? 3)
const EXEC_CALLS = 200
const cli = join(root, 'packages/cli/dist/main.js')

const cache = cacheDir()
const accel = chooseAccelerator(cache).accel === 'kvm' && !chooseAccelerator(cache).probe ? 'kvm' : 'tcg'
const floor = await floorSetup(accel)

/** QEMU spawn → the init's first console line. */
async function floorSample() {
  return (await floorRun(floor)).ms
}

/**
 * VM.up() → ready, and on to its first exec answered: what a test pays before its first command
 * (the first call also sets up the caller's own HTTP/2 connection through a cold guest).
 */
async function upAndFirstExec() {
  const started = performance.now()
  const vm = await VM.up()
  const ready = performance.now() - started
  await vm.exec(['true'])
  const firstExec = performance.now() - started
  await vm.destroy()
  return { vm, ready, firstExec }
}

/** A restore from the default template, again if the bench found the template rebuilt (a cold boot). */
async function restoredSample() {
  for (;;) {
    const sample = await upAndFirstExec()
    if (!sample.vm.template) throw new Error('VM.up() did not restore from a template')
    if (!sample.vm.template.made) return sample
  }
}

async function upSample() {
  const { ready, firstExec } = await restoredSample()
  samples.upExec.push(firstExec)
  return ready
}

/** The next restore in the same process, right after upSample's destroy started a supervisor for it. */
async function upAgainSample() {
  return (await restoredSample()).firstExec
}

/** A cold boot: templates off (the first boot of a definition costs this plus saving one). */
async function coldSample() {
  process.env.VMCTL_TEMPLATES = '0'
  try {
    const { ready, firstExec } = await upAndFirstExec()
    samples.coldExec.push(firstExec)
    return ready
  } finally {
    delete process.env.VMCTL_TEMPLATES
  }
}

/** Proportional and resident memory of a QEMU process, in MB (PSS shares the template's pages). */
function qemuMemoryMb(pid) {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0) / 1024
  return { pss: field('Pss'), rss: field('Rss') }
}

/** This process's parked spare's status, once it parks (after the destroy that started it). */
async function spareParked() {
  const deadline = performance.now() + 300_000
  while (performance.now() < deadline) {
    const parked = listVms().find(
      (v) =>
        v.status?.spare === 'parked' &&
        JSON.parse(readFileSync(v.directory.launchFile, 'utf8')).creatorPid === process.pid,
    )
    if (parked) return parked.status
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('no spare parked within 300 s of its VM.up()')
}

/**
 * VM.up() taking the parked spare → its first exec answered; its destroy starts the next spare,
 * which is let park before anything else is measured. Spares are off everywhere else in the bench.
 */
async function spareSample() {
  process.env.VMCTL_SPARE_VM = '1'
  try {
    const { vm, firstExec } = await upAndFirstExec()
    if (!vm.fromSpare) throw new Error('VM.up() took no spare')
    await spareParked()
    return firstExec
  } finally {
    process.env.VMCTL_SPARE_VM = '0'
  }
}

async function runSample() {
  const started = performance.now()
  let stderr = ''
  const code = await new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, 'run', '--', 'true'], { stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr.on('data', (chunk) => {
      stderr += chunk
    })
    child.on('exit', resolve)
  })
  if (code !== 0) throw new Error(`vmctl run -- true exited with ${code}:\n${stderr}`)
  return performance.now() - started
}

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

const samples = {
  floor: [],
  cold: [],
  coldExec: [],
  up: [],
  upExec: [],
  upAgainExec: [],
  spareExec: [],
  run: [],
  inPlace: [],
}
// The host's CPU: tables from different machines differ by it (a restore and a cold boot unequally).
const cpuModel = `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}`
process.stderr.write(`vmctl bench: ${ROUNDS} rounds, accelerator ${accel}, ${cpuModel}\n`)
await (await VM.up()).destroy() // makes the default template if there is none yet
// Two VMs of the default definition in a row: the second's destroy starts the first spare.
process.env.VMCTL_SPARE_VM = '1'
await (await VM.up()).destroy()
await spareParked()
process.env.VMCTL_SPARE_VM = '0'
const snapshotted = await VM.up({ hostRoot: false })
await snapshotted.exec('echo provisioned > /root/state')
await snapshotted.snapshot('bench')
for (let round = 1; round <= ROUNDS; round++) {
  samples.floor.push(await floorSample())
  samples.cold.push(await coldSample())
  samples.up.push(await upSample())
  samples.upAgainExec.push(await upAgainSample())
  samples.spareExec.push(await spareSample())
  samples.run.push(await runSample())
  const restoreStarted = performance.now()
  await snapshotted.restore('bench')
  await snapshotted.exec('true')
  samples.inPlace.push(performance.now() - restoreStarted)
  process.stderr.write(
    `  round ${round}: floor ${samples.floor.at(-1).toFixed(0)} ms, cold ${samples.cold.at(-1).toFixed(0)} ms, up ${samples.up.at(-1).toFixed(0)} ms (first exec ${samples.upExec.at(-1).toFixed(0)} ms, the next VM ${samples.upAgainExec.at(-1).toFixed(0)} ms, cold ${samples.coldExec.at(-1).toFixed(0)} ms, from a spare ${samples.spareExec.at(-1).toFixed(0)} ms), run ${samples.run.at(-1).toFixed(0)} ms, in-place restore ${samples.inPlace.at(-1).toFixed(0)} ms\n`,
  )
}
await snapshotted.destroy()

// Eight restores at once (total and per VM), then the memory one idle restored VM costs the host.
const parallel = []
let idleMemory
for (let run = 0; run < 3; run++) {
  const started = performance.now()
  const eight = await Promise.all(Array.from({ length: 8 }, () => VM.up()))
  parallel.push(performance.now() - started)
  if (run === 0) {
    await new Promise((r) => setTimeout(r, 2000))
    const memories = eight.map((v) =>
      qemuMemoryMb(
        JSON.parse(readFileSync(join(runtimeDirectory(), 'vms', v.name, 'status.json'), 'utf8')).qemuPid,
      ),
    )
    idleMemory = { pss: median(memories.map((m) => m.pss)), rss: median(memories.map((m) => m.rss)) }
  }
  await Promise.all(eight.map((v) => v.destroy()))
}
const templates = listTemplates(cache)
const defaultTemplate = templates.find(
  (t) => t.summary.startsWith('1024 MiB, 2 CPU') && !t.summary.includes(';'),
)

const vm = await VM.up()
const execTimes = []
const infoTimes = []
const readTimes = []
let guestForkExec
try {
  await vm.exec(['true']) // the first exec pays for cold caches in the guest
  await vm.info()
  await vm.readFile('/etc/hostname')
  // Interleaved, so that a burst of load on the host lands on all three alike.
  for (let i = 0; i < EXEC_CALLS; i++) {
    execTimes.push(await timed(() => vm.exec(['true'])))
    infoTimes.push(await timed(() => vm.info()))
    readTimes.push(await timed(() => vm.readFile('/etc/hostname')))
  }
  guestForkExec = await guestForkExecMs(vm)
} finally {
  await vm.destroy()
}

/**
 * The guest's own cost of starting /bin/true: bash forking and executing it 50 times in a loop,
 * per start (5 runs, in the same VM): the floor an exec round trip is measured against.
 */
async function guestForkExecMs(machine) {
  // An arithmetic loop in the shell itself: a subshell and `seq` inside `time` added two forks to
  // every 50 (+4% to the floor, flattering the ratio).
  const script = 'TIMEFORMAT=%R; time for ((i = 0; i < 50; i++)); do /bin/true; done'
  const runs = []
  for (let i = 0; i < 5; i++) {
    const { stderr } = await machine.exec(['bash', '-c', script])
    runs.push((Number(stderr.trim()) * 1000) / 50)
  }
  return runs
}

// ---- the agent: concurrency and transfers, on one VM with room for a 1 GiB file in its overlay
const big = await VM.up({ memoryMiB: 3072 })
const concurrentRates = []
const transfers = { rawPush: [], rawPull: [], push: [], pull: [] }
// QEMU CPU ms of each transfer: the guest's work, steadier than wall time on a shared host.
const transferQemuMs = { rawPush: [], rawPull: [], push: [], pull: [] }
const work = mkdtempSync(join(tmpdir(), 'vmctl-bench-files-'))
try {
  for (let i = 0; i < 3; i++) {
    const started = performance.now()
    await Promise.all(Array.from({ length: 100 }, () => big.exec(['true'])))
    concurrentRates.push(100 / ((performance.now() - started) / 1000))
  }
  const bigDir = new VmDirectory(big.name)
  const raw = bigDir.rawSocket
  const qemuPid = JSON.parse(readFileSync(bigDir.statusFile, 'utf8')).qemuPid
  const source = join(work, 'source.bin')
  const fd = openSync(source, 'w')
  closeSync(fd)
  ;(await import('node:fs')).truncateSync(source, TRANSFER_BYTES)
  const transfer = async (kind, run) => {
    const qemuBefore = cpuMs(qemuPid)
    transfers[kind].push(await timed(run))
    transferQemuMs[kind].push(cpuMs(qemuPid) - qemuBefore)
  }
  // Each agent transfer next to the raw one it is compared with, the two in turn first from run to
  // run: a single transfer's speed swings with the host's load, a pair's ratio much less.
  const pair = async (i, rawKind, rawRun, agentKind, agentRun) => {
    const both = [
      [rawKind, rawRun],
      [agentKind, agentRun],
    ]
    for (const [kind, run] of i % 2 ? both.reverse() : both) await transfer(kind, run)
  }
  for (let i = 0; i < TRANSFER_RUNS; i++) {
    await pair(
      i,
      'rawPush',
      () => rawSink(raw, TRANSFER_BYTES),
      'push',
      () => big.push(source, '/root/big.bin'),
    )
    await pair(
      i,
      'rawPull',
      () => rawSource(raw, TRANSFER_BYTES),
      'pull',
      () => big.pullTo('/root/big.bin', join(work, 'pulled.bin')),
    )
    if (statSync(join(work, 'pulled.bin')).size !== TRANSFER_BYTES)
      throw new Error('pulled file has the wrong size')
    rmSync(join(work, 'pulled.bin'))
    await big.exec('rm -f /root/big.bin')
    process.stderr.write(
      `  transfer round ${i + 1}: raw push ${transfers.rawPush.at(-1).toFixed(0)} ms, push ${transfers.push.at(-1).toFixed(0)} ms, raw pull ${transfers.rawPull.at(-1).toFixed(0)} ms, pull ${transfers.pull.at(-1).toFixed(0)} ms\n`,
    )
  }
} finally {
  await big.destroy()
  rmSync(work, { recursive: true, force: true })
}

// ---- the agent as one executable
const seaDir = mkdtempSync(join(tmpdir(), 'vmctl-bench-sea-'))
const seaPath = join(seaDir, 'vmctl-agent')
const seaBuildMs = await timed(() => agentPackage.buildAgentExecutable(process.execPath, seaPath))
const seaBytes = statSync(seaPath).size
const seaStart = []
const bundleStart = []
for (let i = 0; i < 10; i++) {
  seaStart.push(await agentStartup(seaPath, []))
  bundleStart.push(await agentStartup(process.execPath, [agentPackage.agentBundlePath()]))
}
rmSync(seaDir, { recursive: true, force: true })

/** Spawn → the agent's "started" log line, with no port to serve (it just waits for one). */
function agentStartup(file, args) {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(file, args, {
      env: { ...process.env, vmctl_agent_port: 'bench-none' },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    child.stderr.on('data', (chunk) => {
      if (String(chunk).includes('started')) {
        resolve(performance.now() - started)
        child.kill('SIGKILL')
      }
    })
    child.on('error', reject)
  })
}

const rows = [
  ['QEMU → init console line (floor)', samples.floor],
  ['cold boot → agent ready (VMCTL_TEMPLATES=0)', samples.cold],
  ['VM.up() → agent ready (restored from the template)', samples.up],
  ['cold boot → first exec answered', samples.coldExec],
  ['VM.up() restored → first exec answered', samples.upExec],
  ['the next VM.up() of the process, restored → first exec answered', samples.upAgainExec],
  ['VM.up() taking a parked spare → first exec answered', samples.spareExec],
  ['vmctl run -- true (end to end)', samples.run],
  ['vm.restore(snapshot) in place → next exec answered', samples.inPlace],
  ['8 concurrent VM.up() from one template, total (3 runs)', parallel],
]
const mbps = (ms) => `${(TRANSFER_BYTES / 1e6 / (ms / 1000)).toFixed(1)} MB/s`
/** raw / agent of each run's pair (time or CPU: the agent's speed as a share of the raw one's). */
const runRatios = (measure, kind) => {
  const rawKind = `raw${kind[0].toUpperCase()}${kind.slice(1)}`
  const ratios = measure[kind].map((agent, i) => measure[rawKind][i] / agent)
  return `${median(ratios).toFixed(2)} [${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}]`
}
const fmt = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`)
const lines = [
  `| measure (${accel}, n=${ROUNDS} interleaved) | median | min | max |`,
  '|---|---|---|---|',
  ...rows.map(
    ([label, v]) => `| ${label} | ${fmt(median(v))} | ${fmt(Math.min(...v))} | ${fmt(Math.max(...v))} |`,
  ),
  `| exec(['true']) round trip, ${EXEC_CALLS} calls | ${fmt(median(execTimes))} | ${fmt(Math.min(...execTimes))} | p99 ${fmt(quantile(execTimes, 0.99))} |`,
  `| the guest's own fork+exec of /bin/true (bash loop of 50), 5 runs | ${fmt(median(guestForkExec))} | ${fmt(Math.min(...guestForkExec))} | ${fmt(Math.max(...guestForkExec))} |`,
  `| vm.info() round trip, ${EXEC_CALLS} calls | ${fmt(median(infoTimes))} | ${fmt(Math.min(...infoTimes))} | p99 ${fmt(quantile(infoTimes, 0.99))} |`,
  `| vm.readFile('/etc/hostname') round trip, ${EXEC_CALLS} calls | ${fmt(median(readTimes))} | ${fmt(Math.min(...readTimes))} | p99 ${fmt(quantile(readTimes, 0.99))} |`,
  `| 100 concurrent exec(['true']), 3 runs | ${median(concurrentRates).toFixed(1)} execs/s | ${Math.min(...concurrentRates).toFixed(1)} | ${Math.max(...concurrentRates).toFixed(1)} |`,
  ...[
    ['push', 'rawPush'],
    ['pull', 'rawPull'],
  ].flatMap(([agentKey, rawKey]) => [
    `| ${agentKey} ${TRANSFER_BYTES >> 20} MiB via the agent (call lane), ${TRANSFER_RUNS} run(s) | ${mbps(median(transfers[agentKey]))} | ${mbps(Math.max(...transfers[agentKey]))} | ${mbps(Math.min(...transfers[agentKey]))} |`,
    `| ${agentKey} ${TRANSFER_BYTES >> 20} MiB over a raw channel (floor), ${TRANSFER_RUNS} run(s) | ${mbps(median(transfers[rawKey]))} | ${mbps(Math.max(...transfers[rawKey]))} | ${mbps(Math.min(...transfers[rawKey]))} |`,
  ]),
  `| agent executable (SEA) start-up, host, n=10 | ${fmt(median(seaStart))} | ${fmt(Math.min(...seaStart))} | ${fmt(Math.max(...seaStart))} |`,
  `| node agent.cjs start-up, host, n=10 | ${fmt(median(bundleStart))} | ${fmt(Math.min(...bundleStart))} | ${fmt(Math.max(...bundleStart))} |`,
  '',
  `agent executable: ${(seaBytes / 1e6).toFixed(1)} MB, built in ${fmt(seaBuildMs)}`,
  `transfers against the floor, per run (the raw transfer next to the agent's), median [min-max]: ${['push', 'pull'].map((kind) => `${kind} ${runRatios(transfers, kind)} of the raw channel's speed, raw/agent QEMU CPU ${runRatios(transferQemuMs, kind)}`).join('; ')}`,
  `ratios of medians: template restore / cold boot = ${(median(samples.up) / median(samples.cold)).toFixed(3)} (target ≤ 0.1), ` +
    `to the first exec answered: restored / cold = ${(median(samples.upExec) / median(samples.coldExec)).toFixed(3)}, ` +
    `the next VM of the process, restored / cold = ${(median(samples.upAgainExec) / median(samples.coldExec)).toFixed(3)}, ` +
    `from a parked spare / cold = ${(median(samples.spareExec) / median(samples.coldExec)).toFixed(3)} (target ≤ 0.08), ` +
    `cold boot / floor = ${(median(samples.cold) / median(samples.floor)).toFixed(2)}, ` +
    `vmctl run / VM.up = ${(median(samples.run) / median(samples.up)).toFixed(2)}, ` +
    `exec round trip / the guest's own fork+exec = ${(median(execTimes) / median(guestForkExec)).toFixed(2)}`,
  `8 concurrent restores: ${fmt(median(parallel) / 8)} per VM (total / 8); an idle restored VM's QEMU: PSS ${idleMemory.pss.toFixed(0)} MB, RSS ${idleMemory.rss.toFixed(0)} MB`,
  `template disk: ${defaultTemplate ? `${(defaultTemplate.bytes / 1e6).toFixed(0)} MB for the default VM (RAM file, sparse, + device state)` : 'n/a'}; ${templates.length} template(s) in the cache`,
]
console.log(lines.join('\n'))
mkdirSync(join(root, 'bench-results'), { recursive: true })
writeFileSync(
  join(root, 'bench-results/latest.json'),
  JSON.stringify(
    {
      date: new Date().toISOString(),
      cpu: cpuModel,
      accel,
      rounds: ROUNDS,
      samples,
      parallel,
      idleMemory,
      templateBytes: defaultTemplate?.bytes,
      execTimes,
      infoTimes,
      readTimes,
      guestForkExec,
      concurrentRates,
      transfers,
      transferQemuMs,
      transferBytes: TRANSFER_BYTES,
      seaBytes,
      seaBuildMs,
      seaStart,
      bundleStart,
    },
    null,
    2,
  ),
)
