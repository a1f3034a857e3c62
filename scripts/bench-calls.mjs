// Per-call latency of the agent (issue 16: a call that starts no process in ≤ 10 ms), A/B.
//
//   VARIANTS='[{"name":"before","root":"/tmp/tree-a"},{"name":"after"}]' CALLS=200 \
//   VMCTL_CACHE_DIR=/tmp/calls-cache node scripts/bench-calls.mjs
//
// Boots one VM per variant (`root`: a built copy of this repository, default this one; `env` set
// around its VM.up(), `options` its VM.up()'s, e.g. {"kernelArgs":["NODE_OPTIONS=--v8-pool-size=1"]}
// for a guest switch), all up at once, then after WARM_UP calls of each kind runs CALLS rounds
// that alternate between the variants: in each round every variant makes one `info()`, one small
// `readFile()`, one `exec(['true'])` and one round trip of 64 bytes over a raw channel that the
// guest echoes (`raw-echo`: the port and the multiplexer without gRPC or HTTP/2, when the
// variant's agent has it). Every call is timed in wall time and in CPU time of the VM's QEMU
// (all its threads: the steadier measure of the guest's work on a loaded host), of its supervisor and of this process. Prints medians
// [min-max] and p90 per kind, and the ratios of each variant to the first. OUT=file writes every
// sample as JSON.
//
// TRANSPORTS=grpc,lane runs every variant's calls once per agent transport (VMCTL_AGENT_TRANSPORT,
// read at each call) in the same VM, alternating: an A/B of the transports that no template's
// difference can skew.
//
// SWITCHES=old,new does the same for the two paths of a throwaway build that has both behind a
// switch: before each call (untimed) the bench opens a raw channel `ab-switch <value>`, which such
// an agent answers `ok` after setting its switch. Two VMs from two templates differ by 10% and more
// from noise alone (docs/call-lane-costs.md); one VM with both paths does not.
import { readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpuMs, ownCpuMs, withEnv } from './bench-helpers.mjs'

const here = fileURLToPath(new URL('..', import.meta.url))
const CALLS = Number(process.env.CALLS ?? 200)
const WARM_UP = Number(process.env.WARM_UP ?? 20)
const vms = JSON.parse(process.env.VARIANTS ?? '[{"name":"this build"}]')
const TRANSPORTS = process.env.TRANSPORTS?.split(',').filter(Boolean)
const SWITCHES = process.env.SWITCHES?.split(',').filter(Boolean)

/** One raw channel that echoes: a 64-byte round trip per call. */
async function rawEcho(socketPath) {
  const socket = net.connect(socketPath)
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  socket.setNoDelay(true)
  socket.write('raw-echo\n')
  const message = Buffer.alloc(64, 0x61)
  let waiting
  let got = 0
  socket.on('data', (chunk) => {
    got += chunk.length
    if (got >= message.length) {
      got -= message.length
      waiting?.()
    }
  })
  const roundTrip = () =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('raw-echo: no answer in 10 s (an agent without it?)')),
        10_000,
      )
      waiting = () => {
        clearTimeout(timer)
        resolve()
      }
      socket.write(message)
    })
  // The first answer also says whether the agent has the service at all.
  try {
    await roundTrip()
  } catch {
    socket.destroy()
    return undefined
  }
  return { roundTrip, close: () => socket.destroy() }
}

/**
 * A fresh raw channel per round trip (connect, name the service, 64 bytes there and back, close):
 * what opening and closing a channel adds to the raw echo, which reuses one.
 */
function rawOpen(socketPath) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath)
    const message = Buffer.alloc(64, 0x61)
    let got = 0
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error('raw-echo: no answer in 10 s'))
    }, 10_000)
    socket.on('error', reject)
    socket.on('data', (chunk) => {
      got += chunk.length
      if (got < message.length) return
      clearTimeout(timer)
      socket.destroy()
      resolve()
    })
    socket.write(Buffer.concat([Buffer.from('raw-echo\n'), message]))
  })
}

/** Sets a throwaway build's switch (see SWITCHES): one raw channel, answered `ok`. */
function setSwitch(socketPath, value) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath)
    let answer = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error('ab-switch: no answer in 10 s'))
    }, 10_000)
    socket.on('error', reject)
    socket.on('data', (chunk) => {
      answer += chunk
    })
    socket.on('close', () => {
      clearTimeout(timer)
      if (answer.startsWith('ok')) resolve()
      else
        reject(
          new Error(
            `ab-switch ${value}: the agent answered ${JSON.stringify(answer)}. SWITCHES needs a throwaway build whose agent serves ab-switch`,
          ),
        )
    })
    socket.write(`ab-switch ${value}\n`)
  })
}

for (const variant of vms) {
  const dist = join(variant.root ?? here, 'packages/core/dist')
  const { VM } = await import(join(dist, 'index.js'))
  const { runtimeDir } = await import(join(dist, 'paths.js'))
  const { VmDirectory } = await import(join(dist, 'supervisor/vm-directory.js'))
  const started = performance.now()
  variant.vm = await withEnv(variant.env ?? {}, () => VM.up(variant.options))
  const status = JSON.parse(readFileSync(join(runtimeDir(), 'vms', variant.vm.name, 'status.json'), 'utf8'))
  variant.qemuPid = status.qemuPid
  variant.supervisorPid = status.pid
  process.stderr.write(
    `${variant.name}: up in ${Math.round(performance.now() - started)} ms (template ${status.template?.made ? 'made' : status.template ? 'restored' : 'none'})\n`,
  )
  const vm = variant.vm
  variant.calls = {
    info: () => vm.info(),
    readFile: () => vm.readFile('/etc/hostname'),
    exec: () => vm.exec(['true']),
  }
  variant.rawSocket = new VmDirectory(vm.name).rawSocket
  const echo = await rawEcho(variant.rawSocket)
  if (echo) {
    variant.calls.rawEcho = echo.roundTrip
    variant.calls.rawOpen = () => rawOpen(new VmDirectory(vm.name).rawSocket)
    variant.echo = echo
  }
  variant.samples = Object.fromEntries(Object.keys(variant.calls).map((kind) => [kind, []]))
}

/** Each VM once per transport: the same calls with VMCTL_AGENT_TRANSPORT set around each. */
const variants = SWITCHES
  ? vms.flatMap((vm) =>
      SWITCHES.map((value) => ({
        ...vm,
        name: `${vm.name === 'this build' ? '' : vm.name} ${value}`.trim(),
        switchTo: () => setSwitch(vm.rawSocket, value),
        samples: Object.fromEntries(Object.keys(vm.calls).map((kind) => [kind, []])),
      })),
    )
  : !TRANSPORTS
    ? vms
    : vms.flatMap((vm) =>
        TRANSPORTS.map((transport) => ({
          ...vm,
          name: `${vm.name} ${transport}`.trim(),
          calls: Object.fromEntries(
            Object.entries(vm.calls).map(([kind, call]) => [
              kind,
              async () => {
                process.env.VMCTL_AGENT_TRANSPORT = transport
                try {
                  await call()
                } finally {
                  delete process.env.VMCTL_AGENT_TRANSPORT
                }
              },
            ]),
          ),
          samples: Object.fromEntries(Object.keys(vm.calls).map((kind) => [kind, []])),
        })),
      )

try {
  for (const variant of variants)
    for (let i = 0; i < WARM_UP; i++)
      for (const call of Object.values(variant.calls)) {
        await variant.switchTo?.()
        await call()
      }
  for (let round = 0; round < CALLS; round++) {
    const order = round % 2 ? [...variants].reverse() : variants
    for (const variant of order) {
      for (const [kind, call] of Object.entries(variant.calls)) {
        await variant.switchTo?.()
        const qemu0 = cpuMs(variant.qemuPid)
        const supervisor0 = cpuMs(variant.supervisorPid)
        const own0 = ownCpuMs()
        const t0 = performance.now()
        await call()
        const wall = performance.now() - t0
        const own = ownCpuMs() - own0
        variant.samples[kind].push({
          wall,
          qemu: cpuMs(variant.qemuPid) - qemu0,
          supervisor: cpuMs(variant.supervisorPid) - supervisor0,
          caller: own,
        })
      }
    }
  }
} finally {
  for (const variant of vms) {
    variant.echo?.close()
    await variant.vm.destroy()
  }
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
const quantile = (values, q) => [...values].sort((a, b) => a - b)[Math.floor(q * (values.length - 1))]
const fmt = (n) => n.toFixed(2)
const measures = ['wall', 'qemu', 'supervisor', 'caller']
console.log(
  `\n${CALLS} rounds after ${WARM_UP} warm-up calls; ms per call, median [min-max] (wall also p90)\n`,
)
for (const kind of ['info', 'readFile', 'exec', 'rawEcho', 'rawOpen']) {
  for (const variant of variants) {
    const samples = variant.samples[kind]
    if (!samples) continue
    const cells = measures.map((m) => {
      const values = samples.map((s) => s[m])
      const extra = m === 'wall' ? ` p90 ${fmt(quantile(values, 0.9))}` : ''
      return `${m} ${fmt(median(values))} [${fmt(Math.min(...values))}-${fmt(Math.max(...values))}]${extra}`
    })
    const base = variants[0].samples[kind]
    const ratio =
      variant === variants[0] || !base
        ? ''
        : `  (wall ${(median(samples.map((s) => s.wall)) / median(base.map((s) => s.wall))).toFixed(2)}x, qemu ${(median(samples.map((s) => s.qemu)) / median(base.map((s) => s.qemu))).toFixed(2)}x)`
    console.log(`${kind.padEnd(8)} ${variant.name.padEnd(10)} ${cells.join('  ')}${ratio}`)
  }
}
if (process.env.OUT)
  writeFileSync(
    process.env.OUT,
    JSON.stringify(
      variants.map((v) => ({ name: v.name, samples: v.samples })),
      null,
      1,
    ),
  )
