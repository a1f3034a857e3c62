// What a restored VM's first commands cost, step by step (docs/first-command-prefetch.md): each
// round restores a VM from the default template and runs a sequence of commands, and each command
// is measured in wall time, QEMU's CPU time (all its threads, from /proc/PID/task/*/schedstat) and
// what QEMU read from the host (rchar and syscr of /proc/PID/io: the 9p share's files). Sequences alternate
// round by round; medians [min-max] per step.
//
//   ROUNDS=4 node scripts/bench-first-exec-split.mjs
//   SEQS='[["dynamic",[["true"],["true"]]],["static first",[["busybox","true"],["true"]]]]' node scripts/bench-first-exec-split.mjs
import { readFileSync } from 'node:fs'
import { core, cpuMs, median } from './bench-helpers.mjs'

const { VM } = await core('index.js')
const sequences = JSON.parse(
  process.env.SEQS ??
    '[["true, true",[["true"],["true"]]],["busybox true, true",[["busybox","true"],["true"]]],["sh -c true, sh -c true",[["/bin/sh","-c","true"],["/bin/sh","-c","true"]]]]',
)
const ROUNDS = Number(process.env.ROUNDS ?? 3)
function reads(pid) {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8')
  return { bytes: Number(/rchar: (\d+)/.exec(io)[1]), calls: Number(/syscr: (\d+)/.exec(io)[1]) }
}

const results = new Map(sequences.map(([name]) => [name, []]))
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, commands] of sequences) {
    const vm = await VM.up(JSON.parse(process.env.UP_OPTIONS ?? '{}'))
    const pid = vm.connection.directory.readStatus()?.qemuPid
    if (!vm.template || !pid) throw new Error('VM.up() did not restore from a template')
    const snapshot = () => ({ at: performance.now(), cpu: cpuMs(pid), ...reads(pid) })
    const marks = [snapshot()]
    try {
      for (const command of commands) {
        await vm.exec(command)
        marks.push(snapshot())
      }
    } finally {
      await vm.destroy()
    }
    const steps = commands.map((_, i) => ({
      wall: marks[i + 1].at - marks[i].at,
      cpu: marks[i + 1].cpu - marks[i].cpu,
      read: marks[i + 1].bytes - marks[i].bytes,
      calls: marks[i + 1].calls - marks[i].calls,
    }))
    results.get(name).push(steps)
    process.stderr.write(
      `round ${round + 1} ${name}: ${steps.map((s) => `${s.wall.toFixed(0)} ms, cpu ${s.cpu.toFixed(0)}, read ${s.read}`).join(' | ')}\n`,
    )
  }
}
for (const [name, commands] of sequences) {
  commands.forEach((command, i) => {
    const stat = (field) => {
      const values = results.get(name).map((steps) => steps[i][field])
      const sorted = [...values].sort((a, b) => a - b)
      return `${median(values).toFixed(0)} [${sorted[0].toFixed(0)}-${sorted.at(-1).toFixed(0)}]`
    }
    console.log(
      `${name} / ${i + 1}: ${JSON.stringify(command)}  wall ${stat('wall')}  QEMU cpu ${stat('cpu')}  read bytes ${stat('read')}  read calls ${stat('calls')}`,
    )
  })
}
