// Part of `pnpm bench`: each kernel of examples/7-kernel-matrix, booted the two ways a test boots
// one, in one run so the figures share the machine's load:
//
//   cold       `VMCTL_TEMPLATES=0 vmctl run -k KERNEL -- true`: no template, a full boot
//   template   `vmctl run -k KERNEL -- true` once a template of that kernel exists: a restore
//
// Kernels are fetched first (not timed). KERNELS=a,b to choose them; ROUNDS=n (default 3) runs of each; medians are printed and
// written to bench-results/kernels.json. virtme-ng (`vng`) is not compared: it is packaged for
// Debian 13, not for the Debian 12 reference machine.
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const cli = join(root, 'packages/cli/dist/main.js')
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const KERNELS = process.env.KERNELS?.split(',') ?? ['debian:bullseye', 'debian:bookworm', 'debian:trixie']

function vmctl(args, env = {}) {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
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
        : reject(new Error(`vmctl ${args.join(' ')} exited ${code}:\n${output}`)),
    )
  })
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
// A run over chosen kernels (KERNELS=...) prints its figures but keeps the file of the full matrix.
if (!process.env.KERNELS)
  writeFileSync(
    join(root, 'bench-results/kernels.json'),
    `${JSON.stringify({ date: new Date().toISOString(), results }, null, 2)}\n`,
  )
