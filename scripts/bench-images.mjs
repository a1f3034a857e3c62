// `pnpm bench:images` (also the last part of `pnpm bench`): image mode's speed, in one run.
//
//   build cold     vmctl image build of the test image ([image] bookworm + jq) into an empty
//                  cache directory: mmdebstrap from the Debian archive, mkfs.ext4 -d, qemu-img
//   build cold cpu the CPU time of that build's processes (steadier than its wall time on a busy host)
//   build cached   the same inputs again: a cache hit
//   image cold     VM.up({ image }) → agent ready with templates off (VMCTL_TEMPLATES=0)
//   image up       VM.up({ image }) → agent ready, restored from the image's VM template
//   provision      VM.up({ image, provision }) with no cached layer: boots, runs the step
//                  (apt-get install hello), keeps the layer, then boots the VM itself
//   provisioned    the same VM.up() once the layer is cached: its first boot also makes the
//                  layer's VM template (a cold boot, saved)
//   provisioned again   the next one: restored from that template
//
// Options: ROUNDS=n (default 3; provision runs once per round with its layer removed first),
// BUILD=0 to skip the cold build (minutes, and a download of ~40 MB). Results also go to
// bench-results/images.json.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const { VM, buildImage, cacheDir } = await import(join(root, 'packages/core/dist/index.js'))
const { layerKey } = await import(join(root, 'packages/core/dist/images/provision.js'))
const { inspectImage } = await import(join(root, 'packages/core/dist/images/image-file.js'))
const { imageIdentity } = await import(join(root, 'packages/core/dist/images/image-disk.js'))
const { listTemplates, removeTemplate } = await import(
  join(root, 'packages/core/dist/templates/template-store.js')
)

const ROUNDS = Number(process.env.ROUNDS ?? 3)
const SPEC = { distribution: 'bookworm', packages: ['jq'] }
const STEPS = [
  'apt-get install -y --no-install-recommends hello || (apt-get update && apt-get install -y --no-install-recommends hello)',
]
const quiet = () => {}
const results = {}
function record(name, ms) {
  results[name] ??= []
  results[name].push(ms)
}
const seconds = (ms) => (ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`)

/** User + system CPU time of this process's waited-for children, from /proc/self/stat (Linux). */
function childrenCpuMs() {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')
  // cutime and cstime: fields 16 and 17 of stat(5), counted from the state field (3).
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100
}

async function timed(fn) {
  const started = performance.now()
  const value = await fn()
  return [performance.now() - started, value]
}

if (process.env.BUILD !== '0') {
  const scratch = mkdtempSync(join(tmpdir(), 'vmctl-bench-cache-'))
  try {
    process.stderr.write('bench-images: cold image build (minutes)\n')
    const cpuBefore = childrenCpuMs()
    const [cold] = await timed(() => buildImage(SPEC, scratch, quiet))
    record('build cold', cold)
    // CPU time of the build's processes (mmdebstrap, apt, dpkg, mkfs, qemu-img): unlike the wall
    // time, it hardly moves with the load of other work on the host.
    record('build cold cpu', childrenCpuMs() - cpuBefore)
    const [cached] = await timed(() => buildImage(SPEC, scratch, quiet))
    record('build cached', cached)
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}

const cache = cacheDir()
const base = (await buildImage(SPEC, cache)).path
const layer = join(cache, 'layers', `${layerKey(inspectImage(base), STEPS)}.qcow2`)

async function up(options, env = {}) {
  const saved = { ...process.env }
  Object.assign(process.env, env)
  try {
    const [ms, vm] = await timed(() => VM.up(options))
    await vm.destroy()
    return ms
  } finally {
    for (const key of Object.keys(env))
      if (saved[key] === undefined) delete process.env[key]
      else process.env[key] = saved[key]
  }
}

await up({ image: base }) // makes the image's template, if there is none yet
for (let round = 1; round <= ROUNDS; round++) {
  process.stderr.write(`bench-images: round ${round}/${ROUNDS}\n`)
  record('image cold', await up({ image: base }, { VMCTL_TEMPLATES: '0' }))
  record('image up', await up({ image: base }))
  rmSync(layer, { force: true })
  rmSync(layer.replace(/\.qcow2$/, '.json'), { force: true })
  record('provision', await up({ image: base, provision: STEPS }))
  record('provisioned', await up({ image: base, provision: STEPS }))
  record('provisioned again', await up({ image: base, provision: STEPS }))
  // Each round's layer is a new file, so its VM template is new too: do not pile them up.
  const identity = imageIdentity(layer)
  for (const t of listTemplates(cache))
    if (t.summary.includes(`image ${identity}`)) removeTemplate(cache, t.key)
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
const rows = [
  ['build cold', '`vmctl image build` (bookworm + jq), empty cache'],
  ['build cold cpu', '`vmctl image build`, empty cache: CPU time (user + system) of its processes'],
  ['build cached', '`vmctl image build`, same inputs again'],
  ['image cold', '`VM.up({ image })` → agent ready, templates off'],
  ['image up', '`VM.up({ image })` → agent ready (template)'],
  ['provision', '`VM.up({ image, provision })`, layer not cached'],
  ['provisioned', '`VM.up({ image, provision })`, layer cached, first boot (makes its template)'],
  ['provisioned again', '`VM.up({ image, provision })`, layer cached (template)'],
]
console.log('\n| measure (image mode) | median | min | max | n |\n| --- | --- | --- | --- | --- |')
for (const [key, label] of rows) {
  const xs = results[key]
  if (!xs) continue
  console.log(
    `| ${label} | ${seconds(median(xs))} | ${seconds(Math.min(...xs))} | ${seconds(Math.max(...xs))} | ${xs.length} |`,
  )
}
mkdirSync(join(root, 'bench-results'), { recursive: true })
writeFileSync(join(root, 'bench-results/images.json'), `${JSON.stringify(results, null, 2)}\n`)
