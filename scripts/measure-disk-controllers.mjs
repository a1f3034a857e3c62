// One-off measurement behind docs/disks.md: what a hot-plug-capable disk controller present from
// boot costs. Interleaved rounds (one sample of each variant per round) of a cold boot
// (VMCTL_TEMPLATES=0) and a restore from the variant's own template, with the controller added
// through `qemuArgs`. Run with XDG_CACHE_HOME pointing at a scratch cache so that the variants'
// templates do not land in the shared one.
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const { VM } = await import(join(root, 'packages/core/dist/index.js'))
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const variants = {
  none: [],
  'virtio-scsi (mmio)': ['-device', 'virtio-scsi-device,id=vmctl-scsi'],
}
const samples = {}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
async function time(name, kind, env) {
  const saved = process.env.VMCTL_TEMPLATES
  if (env.VMCTL_TEMPLATES !== undefined) process.env.VMCTL_TEMPLATES = env.VMCTL_TEMPLATES
  else delete process.env.VMCTL_TEMPLATES
  const started = performance.now()
  const vm = await VM.up({ qemuArgs: variants[name] })
  const ms = performance.now() - started
  await vm.exec(['true'])
  await vm.destroy()
  if (saved === undefined) delete process.env.VMCTL_TEMPLATES
  else process.env.VMCTL_TEMPLATES = saved
  ;(samples[`${kind} ${name}`] ??= []).push(ms)
  console.log(`${kind} ${name}: ${Math.round(ms)} ms`)
}
// Make each variant's template first (not timed).
for (const name of Object.keys(variants)) await time(name, 'make-template', {})
for (let round = 0; round < ROUNDS; round++) {
  for (const name of Object.keys(variants)) {
    await time(name, 'cold', { VMCTL_TEMPLATES: '0' })
    await time(name, 'restore', {})
  }
}
for (const [key, xs] of Object.entries(samples))
  console.log(`${key}: median ${Math.round(median(xs))} ms (min ${Math.round(Math.min(...xs))}, max ${Math.round(Math.max(...xs))}, n=${xs.length})`)
