// `pnpm bench`: vmctl's speed, measured in one run so that ratios hold on a noisy machine.
//
// Each round measures, interleaved (one sample of each per round):
//   floor     QEMU spawn → first line of vmctl's init on the serial console (kernel + initramfs,
//             nothing of vmctl's agent): what any VM on this host costs at least
//   up        VM.up() → agent healthy, in process
//   run       `vmctl run -- true`, a whole CLI process: boot, exec, destroy
// Then, on one VM, 200 sequential `exec(['true'])` round trips (median and p99).
//
// Options: ROUNDS=n (default 7). Results also go to bench-results/latest.json.
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const core = (path) => import(join(root, 'packages/core/dist', path))
const { VM } = await core('index.js')
const { locateKernel } = await core('host/kernel-locator.js')
const { chooseAccelerator, hostTscKhz } = await core('host/accelerator.js')
const { buildInitramfs } = await core('initramfs/initramfs-builder.js')
const { buildRuntimeDisk } = await core('initramfs/runtime-disk.js')
const { qemuArguments } = await core('qemu/qemu-command.js')
const { cacheDir } = await core('paths.js')
const { which, locateQemu } = await core('host/qemu-locator.js')

const ROUNDS = Number(process.env.ROUNDS ?? 7)
const EXEC_CALLS = 200
const cli = join(root, 'packages/cli/dist/main.js')

const cache = cacheDir()
const kernel = locateKernel()
const accel = chooseAccelerator(cache).accel === 'kvm' && !chooseAccelerator(cache).probe ? 'kvm' : 'tcg'
const initramfs = await buildInitramfs({
  kernel,
  nodeBinary: process.execPath,
  busybox: which('busybox', `${process.env.PATH}:/bin`),
  cacheDir: cache,
})
const runtimeDisk = await buildRuntimeDisk(process.execPath, cache)

/** QEMU spawn → the init's first console line. */
async function floorSample() {
  const dir = mkdtempSync(join(tmpdir(), 'vmctl-bench-'))
  const args = qemuArguments({
    binary: 'qemu',
    accel,
    kernel,
    initramfs: initramfs.path,
    runtimeDisk: runtimeDisk.path,
    memoryMiB: 1024,
    cpus: 2,
    hostname: 'bench',
    hostRoot: undefined,
    modulesDir: undefined,
    ports: [],
    qmpSocket: join(dir, 'qmp.sock'),
    agentSocket: join(dir, 'port.sock'),
    tscKhz: hostTscKhz(),
    kernelArgs: [],
    extraArgs: [],
  })
  const started = performance.now()
  const qemu = spawn(locateQemu(), args, { stdio: ['ignore', 'pipe', 'ignore'] })
  try {
    return await new Promise((resolve, reject) => {
      let seen = ''
      const timer = setTimeout(() => reject(new Error('floor: no init line within 120 s')), 120_000)
      qemu.stdout.on('data', (chunk) => {
        seen += chunk
        if (seen.includes('vmctl-init: started')) {
          clearTimeout(timer)
          resolve(performance.now() - started)
        }
      })
      qemu.on('exit', () => reject(new Error('floor: QEMU exited early')))
    })
  } finally {
    qemu.removeAllListeners('exit')
    qemu.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
}

async function upSample() {
  const started = performance.now()
  const vm = await VM.up()
  const ms = performance.now() - started
  await vm.destroy()
  return ms
}

async function runSample() {
  const started = performance.now()
  const code = await new Promise((resolve) =>
    spawn(process.execPath, [cli, 'run', '--', 'true'], { stdio: 'ignore' }).on('exit', resolve),
  )
  if (code !== 0) throw new Error(`vmctl run -- true exited with ${code}`)
  return performance.now() - started
}

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

const samples = { floor: [], up: [], run: [] }
process.stderr.write(`vmctl bench: ${ROUNDS} rounds, accelerator ${accel}\n`)
for (let round = 1; round <= ROUNDS; round++) {
  samples.floor.push(await floorSample())
  samples.up.push(await upSample())
  samples.run.push(await runSample())
  process.stderr.write(
    `  round ${round}: floor ${samples.floor.at(-1).toFixed(0)} ms, up ${samples.up.at(-1).toFixed(0)} ms, run ${samples.run.at(-1).toFixed(0)} ms\n`,
  )
}

const vm = await VM.up()
const execTimes = []
try {
  await vm.exec(['true']) // the first exec pays for cold caches in the guest
  for (let i = 0; i < EXEC_CALLS; i++) {
    const started = performance.now()
    await vm.exec(['true'])
    execTimes.push(performance.now() - started)
  }
} finally {
  await vm.destroy()
}

const rows = [
  ['QEMU → init console line (floor)', samples.floor],
  ['VM.up() → agent ready', samples.up],
  ['vmctl run -- true (end to end)', samples.run],
]
const fmt = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`)
const lines = [
  `| measure (${accel}, n=${ROUNDS} interleaved) | median | min | max |`,
  '|---|---|---|---|',
  ...rows.map(
    ([label, v]) => `| ${label} | ${fmt(median(v))} | ${fmt(Math.min(...v))} | ${fmt(Math.max(...v))} |`,
  ),
  `| exec(['true']) round trip, ${EXEC_CALLS} calls | ${fmt(median(execTimes))} | ${fmt(Math.min(...execTimes))} | p99 ${fmt(quantile(execTimes, 0.99))} |`,
  '',
  `ratios of medians: VM.up / floor = ${(median(samples.up) / median(samples.floor)).toFixed(2)}, ` +
    `vmctl run / VM.up = ${(median(samples.run) / median(samples.up)).toFixed(2)}`,
]
console.log(lines.join('\n'))
mkdirSync(join(root, 'bench-results'), { recursive: true })
writeFileSync(
  join(root, 'bench-results/latest.json'),
  JSON.stringify({ date: new Date().toISOString(), accel, rounds: ROUNDS, samples, execTimes }, null, 2),
)
