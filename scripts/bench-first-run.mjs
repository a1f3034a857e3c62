// Part of `pnpm bench`: what a new user waits for, measured in one run.
//
//   first VM    `vmctl up` on an empty cache (a fresh XDG_CACHE_HOME): the kernel fetched from
//               Debian's archive, the agent's runtime disk and the initramfs built, the KVM probe
//               (on hosts without a cached verdict), the cold boot that makes the template, the
//               restore from it; split by phase from vmctl's own debug log
//   second VM   `vmctl up` right after, on the cache the first one filled
//   twenty      a vitest file of 20 tests, each with a fresh VM, at vitest's default parallelism
//               (one file's tests run one after another): wall time of the whole `vitest run`
//
// Options: FIRST_ROUNDS=n (default 2; each downloads the kernel), TWENTY_RUNS=n (default 1).
// Results also go to bench-results/first-run.json.
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const cli = join(root, 'packages/cli/dist/main.js')
const FIRST_ROUNDS = Number(process.env.FIRST_ROUNDS ?? 2)
const TWENTY_RUNS = Number(process.env.TWENTY_RUNS ?? 1)

function run(command, args, options = {}) {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('error', reject)
    child.on('close', (code) => {
      const ms = performance.now() - started
      if (code !== 0) reject(new Error(`${command} ${args.join(' ')} exited ${code}:\n${stdout}\n${stderr}`))
      else resolve({ stdout, stderr, ms })
    })
  })
}

/** Debug lines as vmctl writes them off a TTY: "ISO-TIME vmctl:NAMESPACE message". */
function debugLines(text) {
  return text
    .split('\n')
    .map((line) => /^(\d{4}-\d\d-\d\dT[\d:.]+Z) (vmctl:\S+) (.*)$/.exec(line))
    .filter(Boolean)
    .map(([, time, namespace, message]) => ({ at: Date.parse(time), namespace, message }))
}

const msIn = (lines, namespace, pattern) => {
  const line = lines.find((l) => l.namespace === namespace && pattern.test(l.message))
  const match = line && /in (\d+) ms/.exec(line.message)
  return match ? Number(match[1]) : undefined
}

async function firstVm(round) {
  const work = mkdtempSync(join(tmpdir(), 'vmctl-bench-first-'))
  const env = {
    ...process.env,
    XDG_CACHE_HOME: join(work, 'cache'),
    VMCTL_RUNTIME_DIR: join(work, 'run'),
    DEBUG: 'vmctl:*',
    DEBUG_COLORS: '0',
  }
  delete env.VMCTL_CACHE_DIR
  delete env.VMCTL_KERNEL
  mkdirSync(env.VMCTL_RUNTIME_DIR, { mode: 0o700 })
  const name = `bench-first-${round}`
  try {
    const first = await run(process.execPath, [cli, 'up', '--name', name], { env })
    const supervisorLog = readFileSync(join(env.VMCTL_RUNTIME_DIR, 'vms', name, 'supervisor.log'), 'utf8')
    await run(process.execPath, [cli, 'down', name], { env })
    const second = await run(process.execPath, [cli, 'up', '--name', `${name}-again`], { env })
    await run(process.execPath, [cli, 'down', `${name}-again`], { env })
    const host = debugLines(first.stderr)
    const supervisor = debugLines(supervisorLog)
    const spawns = supervisor.filter((l) => l.message.includes('spawn '))
    const probe = spawns.length >= 3 && /-accel kvm/.test(spawns[0].message) ? spawns[1].at - spawns[0].at : 0
    const template = msIn(supervisor, 'vmctl:supervisor', /template \S+ made in/)
    const restore = msIn(supervisor, 'vmctl:supervisor', /restored from template, ready in/)
    return {
      totalMs: first.ms,
      ...kernelPhases(first.stderr),
      runtimeDiskMs: msIn(host, 'vmctl:runtime-disk', /built/),
      initramfsMs: msIn(host, 'vmctl:initramfs', /built/),
      kvmProbeMs: probe,
      templateMs: template,
      restoreMs: restore,
      secondMs: second.ms,
    }
  } finally {
    await run(process.execPath, [cli, 'down', '--all'], { env }).catch(() => {})
    rmSync(work, { recursive: true, force: true })
  }
}

/** The kernel fetch's own account, the line it prints once the kernel is installed. */
function kernelPhases(stderr) {
  const match =
    /guest kernel \S+ installed in .* \(index ([\d.]+) s, download ([\d.]+) s, unpack ([\d.]+) s, prepare ([\d.]+) s\)/.exec(
      stderr,
    )
  if (!match) return {}
  const [indexMs, downloadMs, unpackMs, prepareMs] = match.slice(1).map((s) => Number(s) * 1000)
  return {
    kernelFetchMs: indexMs + downloadMs + unpackMs + prepareMs,
    indexMs,
    downloadMs,
    unpackMs,
    prepareMs,
  }
}

async function twentyVms() {
  const vitest = join(root, 'packages/vitest-adapter/node_modules/vitest/vitest.mjs')
  const config = join(root, 'packages/vitest-adapter/test/vitest.config.ts')
  const { ms } = await run(process.execPath, [vitest, 'run', '--config', config, 'twenty-vms'], {
    cwd: join(root, 'packages/vitest-adapter'),
    env: { ...process.env, CI: '1' },
  })
  return ms
}

const median = (values) => {
  const sorted = values.filter((v) => v !== undefined).sort((a, b) => a - b)
  return sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)] : undefined
}
const seconds = (ms) => (ms === undefined ? 'n/a' : `${(ms / 1000).toFixed(2)} s`)

const rounds = []
for (let i = 1; i <= FIRST_ROUNDS; i++) {
  rounds.push(await firstVm(i))
  console.error(`first VM, round ${i}: ${seconds(rounds.at(-1).totalMs)}`)
}
const twenty = []
for (let i = 0; i < TWENTY_RUNS; i++) twenty.push(await twentyVms())

const phases = [
  ['first `vmctl up`, empty cache, total', 'totalMs'],
  ['  kernel fetch, whole', 'kernelFetchMs'],
  ['    archive indexes', 'indexMs'],
  ['    download (~71 MB)', 'downloadMs'],
  ['    unpack (xz, tar)', 'unpackMs'],
  ['    prepare (modules.dep, vmlinux)', 'prepareMs'],
  ['  agent runtime disk (executable + mkfs)', 'runtimeDiskMs'],
  ['  initramfs', 'initramfsMs'],
  ['  KVM probe (no verdict cached yet)', 'kvmProbeMs'],
  ['  cold boot that makes the template', 'templateMs'],
  ['  restore from it → ready', 'restoreMs'],
  ['second `vmctl up`, same cache', 'secondMs'],
]
console.log(`\nFirst run on an empty cache, median of ${FIRST_ROUNDS} (min-max):`)
for (const [label, field] of phases) {
  const values = rounds.map((r) => r[field]).filter((v) => v !== undefined)
  const range = values.length > 1 ? ` (${seconds(Math.min(...values))}-${seconds(Math.max(...values))})` : ''
  console.log(`${label.padEnd(48)} ${seconds(median(values))}${range}`)
}
console.log(
  `${'20 tests, a fresh VM each, one vitest run'.padEnd(48)} ${seconds(median(twenty))} (${TWENTY_RUNS} run${TWENTY_RUNS > 1 ? 's' : ''})`,
)
mkdirSync(join(root, 'bench-results'), { recursive: true })
writeFileSync(
  join(root, 'bench-results/first-run.json'),
  `${JSON.stringify({ at: new Date().toISOString(), rounds, twentyVmsMs: twenty }, null, 2)}\n`,
)
