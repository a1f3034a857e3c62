// Part of `pnpm bench`: each kernel of examples/7-kernel-matrix, booted the two ways a test boots
// one, in one run so the figures share the machine's load:
//
//   cold       `VMCTL_TEMPLATES=0 vmctl run -k KERNEL -- true`: no template, a full boot
//   template   `vmctl run -k KERNEL -- true` once a template of that kernel exists: a restore
//
// Kernels are fetched first (not timed). KERNELS=a,b to choose them; ROUNDS=n (default 3) runs of each; medians are printed and
// written to bench-results/kernels.json.
//
// When virtme-ng's `vng` is on PATH (scripts/setup-virtme-ng.sh installs Debian 13's on Debian 12),
// the same run puts it beside vmctl on VNG_KERNELS (default debian:bookworm; each vng boot takes a
// minute or two under TCG): `vng --run KERNEL -- true` against both vmctl boots above, rounds
// interleaved, same kernel file, same accelerator and the same 2 CPUs and 1 GiB. vng is told
// --disable-kvm when vmctl falls back to TCG, and --force-9p (its virtiofsd path needs a working
// virtiofsd; without one it waits for it, then falls back to 9p anyway).
import { spawn } from 'node:child_process'
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const cli = join(root, 'packages/cli/dist/main.js')
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const KERNELS = process.env.KERNELS?.split(',') ?? ['debian:bullseye', 'debian:bookworm', 'debian:trixie']

function vmctl(args, env = {}) {
  return timed(process.execPath, [cli, ...args], env)
}

function timed(command, args, env = {}) {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk) => (output += chunk))
    child.stderr.on('data', (chunk) => (output += chunk))
    child.on('error', reject)
    child.on('close', (code) =>
      code === 0
        ? resolve(performance.now() - started)
        : reject(new Error(`${command} ${args.join(' ')} exited ${code}:\n${output}`)),
    )
  })
}

/**
 * vng, its output into a file: vng reopens /proc/self/fd/0-2 read-write for the guest's I/O and
 * refuses to run ("not a valid pts") when they are Node's pipes, which are sockets.
 */
async function timedVng(vng, args) {
  const log = join(mkdtempSync(join(tmpdir(), 'bench-vng-')), 'output')
  const fd = openSync(log, 'w')
  const started = performance.now()
  try {
    const code = await new Promise((resolve, reject) => {
      const child = spawn(vng, args, { stdio: ['ignore', fd, fd] })
      child.on('error', reject)
      child.on('close', resolve)
    })
    if (code !== 0) throw new Error(`vng ${args.join(' ')} exited ${code}:\n${readFileSync(log, 'utf8')}`)
    return performance.now() - started
  } finally {
    closeSync(fd)
    rmSync(dirname(log), { recursive: true, force: true })
  }
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const seconds = (ms) => (ms / 1000).toFixed(1)

await vmctl(['kernel', 'fetch', ...KERNELS])
const results = {}
for (const kernel of KERNELS) {
  await vmctl(['run', '-k', kernel, '--', 'true']) // makes the template, if there is none
  const cold = []
  const template = []
  for (let i = 0; i < ROUNDS; i++) {
    cold.push(await vmctl(['run', '-k', kernel, '--', 'true'], { VMCTL_TEMPLATES: '0' }))
    template.push(await vmctl(['run', '-k', kernel, '--', 'true']))
  }
  results[kernel] = { coldMs: median(cold), templateMs: median(template), rounds: ROUNDS }
  console.log(
    `${kernel.padEnd(16)} cold ${seconds(median(cold))} s   from a template ${seconds(median(template))} s   (${(median(cold) / median(template)).toFixed(1)}x, median of ${ROUNDS})`,
  )
}

const vng = process.env.PATH?.split(delimiter)
  .map((dir) => join(dir, 'vng'))
  .find((path) => existsSync(path))
const vngResults = {}
if (vng) {
  const { cacheDir, chooseAccelerator, listCachedKernels, listVms } = await import(
    '../packages/core/dist/index.js'
  )
  // The accelerator vmctl settled on (KVM where its probe boot worked, else TCG; the boots above
  // made the probe), so vng gets the same.
  const choice = chooseAccelerator(cacheDir())
  const kvm = choice.accel === 'kvm' && !choice.probe
  for (const kernel of process.env.VNG_KERNELS?.split(',') ?? ['debian:bookworm']) {
    await vmctl(['kernel', 'fetch', kernel])
    const entry = listCachedKernels(cacheDir()).find((k) => k.names.includes(kernel))
    if (!entry) throw new Error(`no cached kernel is named ${kernel} after vmctl kernel fetch`)
    // vmlinuz, not vmctl's unpacked vmlinux: vng boots what a package installs, and finds the
    // modules beside it (lib/modules/RELEASE).
    const image = join(entry.dir, 'vmlinuz')
    const flags = ['--force-9p', '--cpus', '2', '--memory', '1G', ...(kvm ? [] : ['--disable-kvm'])]
    await vmctl(['run', '-k', kernel, '--', 'true'])
    // `VMCTL_SPARE_VM=1 vmctl run` leaves a spare for the next such run (docs/spare-vm.md): the
    // first one here leaves the first; each later one takes the last's, parked while vng booted.
    const spare = { VMCTL_SPARE_VM: '1', VMCTL_SPARE_IDLE_S: '600' }
    await vmctl(['run', '-k', kernel, '--', 'true'], spare)
    const runs = { vng: [], cold: [], template: [], spare: [] }
    for (let i = 0; i < ROUNDS; i++) {
      runs.vng.push(await timedVng(vng, ['--run', image, ...flags, '--', 'true']))
      // Neither takes the spare waiting for the next `spare` run (any `vmctl run` of its options would).
      runs.cold.push(
        await vmctl(['run', '-k', kernel, '--', 'true'], { VMCTL_TEMPLATES: '0', VMCTL_SPARE_VM: '0' }),
      )
      runs.template.push(await vmctl(['run', '-k', kernel, '--', 'true'], { VMCTL_SPARE_VM: '0' }))
      runs.spare.push(await vmctl(['run', '-k', kernel, '--', 'true'], spare))
    }
    // The last run's spare: ended now, not at its idle time.
    for (const { status, directory } of listVms()) {
      const launched = JSON.parse(readFileSync(directory.launchFile, 'utf8'))
      if (status?.spare && launched.spareIdleMs === 600_000) process.kill(status.pid, 'SIGTERM')
    }
    const [v, c, t, p] = [median(runs.vng), median(runs.cold), median(runs.template), median(runs.spare)]
    vngResults[kernel] = {
      vngMs: v,
      coldMs: c,
      templateMs: t,
      spareMs: p,
      accel: kvm ? 'kvm' : 'tcg',
      rounds: ROUNDS,
    }
    console.log(
      `${kernel.padEnd(16)} vng ${seconds(v)} s   vmctl cold ${seconds(c)} s (vng/vmctl ${(v / c).toFixed(1)}x)   from a template ${seconds(t)} s (${(v / t).toFixed(1)}x)   taking a spare ${seconds(p)} s (${(v / p).toFixed(1)}x), ${kvm ? 'KVM' : 'TCG'}, median of ${ROUNDS}`,
    )
  }
} else {
  console.log('virtme-ng: no vng on PATH, not compared (bash scripts/setup-virtme-ng.sh installs it)')
}
// A run over chosen kernels (KERNELS=...) prints its figures but keeps the file of the full matrix.
if (!process.env.KERNELS)
  writeFileSync(
    join(root, 'bench-results/kernels.json'),
    `${JSON.stringify({ date: new Date().toISOString(), results, ...(vng ? { vng: vngResults } : {}) }, null, 2)}\n`,
  )
