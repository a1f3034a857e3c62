// A restored VM's first command, phase by phase (issue 16): VM.up() from the default template, then
// exec(['true']) twice, ROUNDS times. The supervisor stamps its phases with DEBUG=vmctl:timeline
// (packages/core/src/supervisor/restore-timeline.ts: wall-clock ms since the epoch, so they line
// up with this process's own stamps); each phase is printed as ms after VM.up() was called,
// median [min-max] over the rounds.
//
//   ROUNDS=5 node scripts/bench-first-command.mjs
//   SIDES='[{"name":"a","env":{}},{"name":"b","env":{"X":"1"}}]' ROUNDS=5 node scripts/bench-first-command.mjs
//
// With SIDES, rounds alternate between the sides (a, b, a, b, ...), each side's env set while its
// VM boots (the supervisor inherits it): an A/B in one run. A side whose guest differs needs its
// own VMCTL_CACHE_DIR (its own template); `callEnv` is set around the execs only, e.g.
// {"callEnv":{"VMCTL_AGENT_TRANSPORT":"grpc"}} for the agent's old transport; `execEnv` is each
// exec's own env, e.g. {"execEnv":{"vmctl_exec_via":"nsenter"}} (one template serves both sides). One uncounted round per side comes first (it makes the
// side's template if needed). CONCURRENT=N restores N VMs at once per round. TRACE=1 prints one round's stamps, with the chunks on the agent's port.
import { readFileSync } from 'node:fs'
import { core, median, withEnv } from './bench-helpers.mjs'

process.env.DEBUG = [process.env.DEBUG, 'vmctl:timeline', 'vmctl:supervisor'].filter(Boolean).join(',')
const { VM } = await core('index.js')

const ROUNDS = Number(process.env.ROUNDS ?? 5)
/** VMs per round, restored at once (the host's load of a test suite's parallel files). */
const CONCURRENT = Number(process.env.CONCURRENT ?? 1)
const sides = JSON.parse(process.env.SIDES ?? '[{"name":"current","env":{}}]')
const now = () => performance.timeOrigin + performance.now()

/** The supervisor's stamps: [epoch ms, what] in order, and the port's chunks apart. */
function supervisorStamps(log) {
  const stamps = []
  for (const line of log.split('\n')) {
    const timeline = / vmctl:timeline \S+ ([\d.]+) cpu=(\S+) (.*)$/.exec(line)
    if (timeline) {
      stamps.push([Number(timeline[1]), timeline[3], Number(timeline[2])])
      continue
    }
    const iso = /^(\S+Z) vmctl:supervisor \[\S+\] (supervisor running|ready in)/.exec(line)
    if (iso)
      stamps.push([Date.parse(iso[1]), iso[2] === 'ready in' ? 'supervisor: ready' : 'supervisor running'])
  }
  return stamps
}

/** A process's CPU time so far (user + system), ms; 10 ms steps (/proc's clock ticks). */
function supervisorCpu(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100
  } catch {
    return Number.NaN
  }
}

/** One round: phases as ms after VM.up() was called. */
async function round(side) {
  const saved = {}
  for (const [name, value] of Object.entries(side.env)) {
    saved[name] = process.env[name]
    process.env[name] = value
  }
  const t0 = now()
  const callerCpu0 = process.cpuUsage()
  let vm
  try {
    vm = await VM.up({ ...JSON.parse(process.env.UP_OPTIONS ?? '{}'), ...side.options })
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  }
  const up = now()
  const host = new Map()
  const callerCpu = () => {
    const used = process.cpuUsage(callerCpu0)
    return (used.user + used.system) / 1000
  }
  host.set('caller CPU to ready', callerCpu())
  host.set('supervisor CPU at ready', supervisorCpu(vm.connection.status.pid))
  // A side's callEnv is set around its execs (VMCTL_AGENT_TRANSPORT is read at each call).
  // execEnv goes with each exec's request (e.g. {"vmctl_exec_via":"nsenter"}: how the guest starts it).
  const execOptions = side.execEnv ? { env: side.execEnv } : {}
  const first = await withEnv(side.callEnv ?? {}, async () => {
    await vm.exec(['true'], execOptions)
    return now()
  })
  host.set('caller CPU to first exec', callerCpu())
  host.set('supervisor CPU at first exec', supervisorCpu(vm.connection.status.pid))
  await withEnv(side.callEnv ?? {}, () => vm.exec(['true'], execOptions))
  const second = now()
  // The log goes with the VM's directory: read it first.
  const log = readFileSync(vm.connection.directory.supervisorLog, 'utf8')
  // guest-setup's own account of the root mount, per step (packages/agent/native/mount-root.c).
  const console_ = readFileSync(vm.connection.directory.consoleLog, 'utf8')
  const rootLine = [...console_.matchAll(/vmctl-init: root ready at [^\r\n]*/g)].at(-1)?.[0]
  // With kernelArgs vmctl_exec_timing=1: the agent's laps of each exec (exec-timing.ts).
  const execLines = [...console_.matchAll(/vmctl-agent: exec \d+ timing[^\r\n]*/g)].map((m) => m[0])
  const made = vm.template?.made
  await vm.destroy()
  if (!vm.template) throw new Error('VM.up() did not restore from a template')
  const phases = new Map()
  const cpu = new Map()
  const stamps = supervisorStamps(log)
  const put = (name, at, qemuCpu) => {
    if (phases.has(name)) return
    phases.set(name, at - t0)
    if (qemuCpu !== undefined && !Number.isNaN(qemuCpu)) cpu.set(name, qemuCpu)
  }
  for (const [at, what, qemuCpu] of stamps) {
    if (what.startsWith('port ')) continue
    if (what.startsWith('client connected')) {
      put(at < up ? 'client connected (during up)' : 'exec: client connected', at, qemuCpu)
      continue
    }
    put(what, at, qemuCpu)
  }
  put('caller: VM.up() resolved', up)
  // More than one HELLO: the guest did not answer the parked session's GO in time and the host
  // started the ordinary handshake over (MuxSession's PARKED_SYNC_MS).
  const hellos = stamps.filter(([at, what]) => at < up && what.includes('VMCTL-HELLO')).length
  // The guest's first bytes on the exec's channel (HTTP/2 SETTINGS from the agent's server), and
  // its last before each exec was answered (QEMU's CPU time then).
  const fromGuest = (from, to) =>
    stamps.filter(([at, what]) => at > from && at < to && what.startsWith('port <- '))
  const exec = fromGuest(up, first)
  if (exec.length > 0) put('exec: first guest bytes', exec[0][0], exec[0][2])
  if (exec.length > 0) put('exec: last guest bytes', exec.at(-1)[0], exec.at(-1)[2])
  put('caller: first exec answered', first)
  const again = fromGuest(first, second)
  if (again.length > 0) put('exec 2: last guest bytes', again.at(-1)[0], again.at(-1)[2])
  put('caller: second exec answered', second)
  return {
    made,
    host,
    phases,
    cpu,
    rootLine,
    execLines,
    hellos,
    trace: stamps.map(([at, w, c]) => [at - t0, `${w}${Number.isNaN(c) ? '' : ` (QEMU cpu ${c})`}`]),
  }
}

const results = new Map(sides.map((side) => [side.name, []]))
let traced = false
// One uncounted restore per side first: it makes the side's template if there is none (a cold boot
// plus a save, not a restore) and brings the template's files into the host's page cache.
for (const side of sides) while ((await round(side)).made) {}
for (let i = 0; i < ROUNDS; i++) {
  for (const side of sides) {
    const batch = await Promise.all(Array.from({ length: CONCURRENT }, () => round(side)))
    results.get(side.name).push(...batch)
    const result = batch[0]
    const p = result.phases
    process.stderr.write(
      `round ${i + 1} ${side.name}: ready ${p.get('caller: VM.up() resolved').toFixed(0)} ms, first exec ${p.get('caller: first exec answered').toFixed(0)} ms, HELLOs ${batch.map((r) => r.hellos).join(' ')}; ${result.rootLine ?? ''}\n`,
    )
    for (const line of result.execLines) process.stderr.write(`  ${line}\n`)
    if (process.env.TRACE && !traced) {
      traced = true
      for (const [at, what] of result.trace) console.log(`  ${at.toFixed(1).padStart(8)}  ${what}`)
    }
  }
}

const f = (v) => v.toFixed(0)
for (const side of sides) {
  const all = results.get(side.name)
  const rounds = all.map((r) => r.phases)
  console.log(
    `\n${side.name}: wall ms after VM.up() was called, and QEMU CPU ms since its spawn; median [min-max] of ${rounds.length}`,
  )
  const names = [...rounds[0].keys()]
  const stat = (values) => {
    const sorted = [...values].sort((a, b) => a - b)
    return `${f(median(values)).padStart(6)} [${f(sorted[0])}-${f(sorted.at(-1))}]`
  }
  for (const name of names) {
    const values = rounds.map((r) => r.get(name)).filter((v) => v !== undefined)
    if (values.length === 0) continue
    const cpus = all.map((r) => r.cpu.get(name)).filter((v) => v !== undefined)
    console.log(`  ${name.padEnd(34)} ${stat(values).padEnd(22)} ${cpus.length ? `cpu ${stat(cpus)}` : ''}`)
  }
  for (const name of rounds.length ? [...all[0].host.keys()] : []) {
    const values = all.map((r) => r.host.get(name)).filter((v) => !Number.isNaN(v))
    if (values.length) console.log(`  host: ${name.padEnd(28)} ${stat(values)}`)
  }
  const ratio = (a, b) => median(rounds.map((r) => r.get(a) - r.get(b))).toFixed(0)
  console.log(
    `  handshakes started over (more than one HELLO): ${all.filter((r) => r.hellos > 1).length} of ${all.length}`,
  )
  console.log(
    `  first exec after ready: ${ratio('caller: first exec answered', 'caller: VM.up() resolved')} ms; second exec: ${ratio('caller: second exec answered', 'caller: first exec answered')} ms`,
  )
}
