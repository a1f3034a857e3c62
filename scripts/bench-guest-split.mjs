// Where the guest's CPU goes during calls of one kind, by the guest kernel's own account:
//
//   KIND=info N=200 node scripts/bench-guest-split.mjs     # KIND: info, readFile, exec, idle
//
// Boots one VM, makes 50 warm-up calls, then reads the run time of every thread in the guest
// (/proc/PID/task/TID/schedstat: nanoseconds on a CPU by the scheduler's clock, not ticks), makes N
// calls, reads it again, and prints each thread's run time per call, with the guest's uptime and
// the host's wall time per call. `idle` sleeps 20 ms instead of a call: the background.
//
// The reads are one `sh` with builtins only (no fork per file: a fork per thread read made the
// guest's own RCU thread look like the largest consumer). The two reads' own cost falls partly in
// the window: see the `sh` row and the idle run. Under TCG a guest thread's run time counts the
// time its vCPU's host thread was preempted as well (the guest cannot tell), so on a loaded host it
// reads as wall time; compare threads with each other, and runs at a like load.
import { join } from 'node:path'
import { root } from './bench-helpers.mjs'

const { VM } = await import(join(root, 'packages/core/dist/index.js'))
const KIND = process.env.KIND ?? 'info'
const N = Number(process.env.N ?? 200)

const SNAPSHOT =
  'read u < /proc/uptime; echo $u; for t in /proc/[0-9]*/task/*; do ' +
  'read c < $t/comm; read s < $t/schedstat; echo "$t $c $s"; done 2>/dev/null'

async function snapshot(vm) {
  const { stdout } = await vm.exec(['sh', '-c', SNAPSHOT])
  const [uptime, ...lines] = stdout.split('\n').filter(Boolean)
  const runMs = new Map()
  for (const line of lines) {
    const [path, ...rest] = line.split(' ')
    const [, , pid, , tid] = path.split('/')
    const comm = rest.slice(0, -3).join(' ')
    runMs.set(`${comm} ${pid}/${tid}`, Number(rest.at(-3)) / 1e6)
  }
  return { uptime: Number(uptime.split(' ')[0]), runMs }
}

const vm = await VM.up()
try {
  const calls = {
    info: () => vm.info(),
    readFile: () => vm.readFile('/etc/hostname'),
    exec: () => vm.exec(['true']),
    idle: () => new Promise((resolve) => setTimeout(resolve, 20)),
  }
  const call = calls[KIND]
  if (!call) throw new Error(`KIND=${KIND}: one of ${Object.keys(calls).join(', ')}`)
  for (let i = 0; i < 50; i++) await call()
  const before = await snapshot(vm)
  const started = performance.now()
  for (let i = 0; i < N; i++) await call()
  const wall = (performance.now() - started) / N
  const after = await snapshot(vm)
  const perCall = [...after.runMs]
    .map(([thread, ms]) => [thread, (ms - (before.runMs.get(thread) ?? 0)) / N])
    .filter(([, ms]) => ms > 0)
    .sort((a, b) => b[1] - a[1])
  const total = perCall.reduce((sum, [, ms]) => sum + ms, 0)
  console.log(
    `${KIND}: ${N} calls, wall ${wall.toFixed(2)} ms each, guest uptime ${(((after.uptime - before.uptime) * 1000) / N).toFixed(2)} ms per call`,
  )
  console.log(`run time per call, ms: all threads ${total.toFixed(2)}`)
  for (const [thread, ms] of perCall.slice(0, 12)) console.log(`  ${ms.toFixed(3).padStart(8)}  ${thread}`)
} finally {
  await vm.destroy()
}
