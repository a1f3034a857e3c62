// `node scripts/bench-transfer.mjs`: file transfers through the agent against the raw multiplexer
// channel (no gRPC) moving the same bytes, interleaved in one run on one VM per variant.
//
// Each round, on each variant's VM in turn: raw pull, agent pull (vm.pullTo), raw push, agent push
// (vm.push). Every transfer is timed in wall time and in CPU time of the VM's QEMU (all its
// threads) and of the host side (this process plus the VM's supervisor): on a shared host the CPU
// times are the steadier measure. Prints medians [min-max] and each agent transfer as a ratio of
// the raw one of the same round.
//
//   TRANSFER_MB=64 ROUNDS=5 node scripts/bench-transfer.mjs
//   VARIANTS='[{"name":"main","root":"/tmp/base"},{"name":"this"}]' node scripts/bench-transfer.mjs
//
// `root` is a built copy of this repository (default: this one). Each variant boots its own VM, with
// the variant's `vmOptions` if it has any (e.g. {"qemuArgs":["-cpu","max,-erms"]}).
// TRANSPORTS=grpc,lane makes each agent transfer once per agent transport (VMCTL_AGENT_TRANSPORT)
// in the same VM and round: pull-grpc, pull-lane, push-grpc, push-lane. ONLY=pull (or push) runs one
// direction.
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cpuMs, root as here, median, ownCpuMs, rawSink, rawSource, withEnv } from './bench-helpers.mjs'

const MB = Number(process.env.TRANSFER_MB ?? 64)
const BYTES = MB * 1024 * 1024
const ROUNDS = Number(process.env.ROUNDS ?? 5)
const variants = JSON.parse(process.env.VARIANTS ?? '[{"name":"this build"}]')
const TRANSPORTS = process.env.TRANSPORTS?.split(',').filter(Boolean)
const agentKinds = (kind) => (TRANSPORTS ? TRANSPORTS.map((t) => `${kind}-${t}`) : [kind])
// ONLY=pull or ONLY=push: that direction alone (each with its raw transfer), for a shorter run.
const ONLY = process.env.ONLY
const KINDS = [
  ...(ONLY === 'push' ? [] : ['rawPull', ...agentKinds('pull')]),
  ...(ONLY === 'pull' ? [] : ['rawPush', ...agentKinds('push')]),
]

const work = mkdtempSync(join(tmpdir(), 'vmctl-bench-transfer-'))
const source = join(work, 'source.bin')
writeFileSync(source, '')
truncateSync(source, BYTES)
try {
  for (const variant of variants) {
    const dist = join(variant.root ?? here, 'packages/core/dist')
    const { VM } = await import(join(dist, 'index.js'))
    const { VmDirectory } = await import(join(dist, 'supervisor/vm-directory.js'))
    // A loaded host boots slowly; `vmOptions` are a variant's own VM.up() options (qemuArgs, ...).
    variant.vm = await VM.up({ memoryMiB: 1024 + 2 * MB, bootTimeoutMs: 600_000, ...variant.vmOptions })
    const dir = new VmDirectory(variant.vm.name)
    variant.raw = dir.rawSocket
    const status = JSON.parse(readFileSync(dir.statusFile, 'utf8'))
    variant.qemuPid = status.qemuPid
    variant.supervisorPid = status.pid
    variant.samples = Object.fromEntries(KINDS.map((k) => [k, []]))
    await variant.vm.exec(`head -c ${BYTES} /dev/zero > /root/pull.bin`)
  }
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 ? [...variants].reverse() : variants
    for (const variant of order) {
      const { vm } = variant
      const pulled = join(work, 'pulled.bin')
      const pull = async () => {
        await vm.pullTo('/root/pull.bin', pulled)
        if (statSync(pulled).size !== BYTES) throw new Error('pulled file has the wrong size')
      }
      const push = () => vm.push(source, '/root/pushed.bin')
      const runs = {
        rawPull: () => rawSource(variant.raw, BYTES),
        rawPush: () => rawSink(variant.raw, BYTES),
      }
      for (const [kind, work] of [
        ['pull', pull],
        ['push', push],
      ])
        for (const name of agentKinds(kind))
          runs[name] = () => withEnv({ VMCTL_AGENT_TRANSPORT: name.split('-')[1] }, work)
      for (const kind of KINDS) variant.samples[kind].push(await measured(variant, runs[kind]))
      rmSync(pulled, { force: true })
      await vm.exec('rm -f /root/pushed.bin')
      const last = (k) => `${k} ${variant.samples[k].at(-1).wall.toFixed(0)} ms`
      process.stderr.write(`round ${round + 1} ${variant.name}: ${KINDS.map(last).join(', ')}\n`)
    }
  }
} finally {
  for (const variant of variants) await variant.vm?.destroy()
  rmSync(work, { recursive: true, force: true })
}

const mbps = (ms) => BYTES / 1e6 / (ms / 1000)
const stat = (values, f = (v) => v.toFixed(1)) =>
  `${f(median(values))} [${f(Math.min(...values))}-${f(Math.max(...values))}]`
console.log(`${MB} MiB, ${ROUNDS} rounds interleaved; medians [min-max]`)
for (const variant of variants) {
  console.log(`\n${variant.name}`)
  for (const kind of KINDS) {
    const s = variant.samples[kind]
    console.log(
      `  ${kind.padEnd(10)} ${stat(s.map((x) => mbps(x.wall)))} MB/s, QEMU CPU ${stat(s.map((x) => x.qemu))} ms, host CPU ${stat(s.map((x) => x.host))} ms`,
    )
  }
  for (const [agent, raw] of [
    ...agentKinds('pull').map((k) => [k, 'rawPull']),
    ...agentKinds('push').map((k) => [k, 'rawPush']),
  ].filter(([agent]) => KINDS.includes(agent))) {
    const ratio = (key) => variant.samples[raw].map((r, i) => r[key] / variant.samples[agent][i][key])
    console.log(
      `  ${agent} / raw, per round: speed ${stat(ratio('wall'), (v) => v.toFixed(2))}, QEMU CPU (raw/agent) ${stat(ratio('qemu'), (v) => v.toFixed(2))}`,
    )
  }
}

async function measured(variant, work) {
  const before = cpu(variant)
  const started = performance.now()
  await work()
  const wall = performance.now() - started
  const after = cpu(variant)
  return { wall, qemu: after.qemu - before.qemu, host: after.host - before.host }
}

/** CPU ms of the VM's QEMU (all threads) and of the host side (this process and the supervisor). */
function cpu(variant) {
  return {
    qemu: cpuMs(variant.qemuPid),
    host: cpuMs(variant.supervisorPid) + ownCpuMs(),
  }
}
