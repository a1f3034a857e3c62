// A VM's life (part of `pnpm bench`; alone: `pnpm bench:lifecycle`), measured in one run so that
// ratios hold on a noisy host. Each round, interleaved:
//   disks     on a fresh VM restored from the default template: its first exec(['true']) (for
//             scale), its first attachDisk() → the guest sees the disk, detachDisk() → gone from
//             the guest and QEMU, a second attach (the guest's code paths warm) and detach
//   kernel    on one kernel-mode VM (the host's root): stop(), start() (a template clone: such a
//             VM has no disk state to keep), restart(), restart({ hard: true }); then start() with
//             one disk plugged in at the stop (plugged again before start() resolves)
//   image     on one image-mode VM (Debian bookworm with jq, the repository's test image): stop(),
//             start() (a cold boot from its disk: a template's RAM would predate what the guest
//             wrote), restart(), restart({ hard: true })
// With CONTROLLERS=1 it also times, interleaved, the floor (bench-helpers.mjs) for: the VM as it is
// (a virtio-scsi controller present from boot), one more such controller (what the first costs a
// boot), and microvm `pcie=on` with a root port (the PCIe hot-plug candidate: `pci=off` dropped).
// docs/disks.md and docs/vm-lifecycle.md have the figures.
//
// Options: ROUNDS=n (default 3), CONTROLLERS=1. Results also go to bench-results/lifecycle.json.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { core, floorSample, floorSetup, median, msRow, root, timed } from './bench-helpers.mjs'

const { VM, VmDisk } = await core('index.js')
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const IMAGE = { distribution: 'bookworm', packages: ['jq'] }
const scratch = mkdtempSync(join(tmpdir(), 'vmctl-bench-lifecycle-'))
process.env.VMCTL_DISKS_DIR = join(scratch, 'disks')

const power = () => ({ stop: [], start: [], restart: [], hardRestart: [] })
const samples = {
  firstAttach: [],
  attach: [],
  detach: [],
  exec: [],
  kernel: { ...power(), startWithDisk: [] },
  image: power(),
}
const floors = { base: [], extraController: [], pcie: [] }

async function diskRound() {
  const vm = await VM.up()
  const disk = await VmDisk.create({ sizeMiB: 64 })
  try {
    samples.exec.push(await timed(() => vm.exec(['true'])))
    samples.firstAttach.push(await timed(() => vm.attachDisk(disk)))
    samples.detach.push(await timed(() => vm.detachDisk(disk)))
    samples.attach.push(await timed(() => vm.attachDisk(disk)))
    samples.detach.push(await timed(() => vm.detachDisk(disk)))
  } finally {
    await vm.destroy()
    await disk.delete()
  }
}

/** stop, start, restart and a hard restart of `vm`, each timed to its promise resolving (ready). */
async function powerRound(vm, into) {
  into.stop.push(await timed(() => vm.stop()))
  into.start.push(await timed(() => vm.start()))
  into.restart.push(await timed(() => vm.restart()))
  into.hardRestart.push(await timed(() => vm.restart({ hard: true })))
  await vm.exec(['true'])
}

/** start() of a VM that had a disk plugged in when it stopped: the boot and the plug again. */
async function startWithDisk(vm, into) {
  const disk = await VmDisk.create({ sizeMiB: 64 })
  try {
    await vm.attachDisk(disk, { serial: 'bench' })
    await vm.stop()
    into.push(await timed(() => vm.start()))
    await vm.detachDisk(disk)
  } finally {
    await disk.delete()
  }
}

const CONTROLLER_VARIANTS = {
  base: (args) => args,
  extraController: (args) => [...args, '-device', 'virtio-scsi-device,id=bench-scsi2'],
  pcie: (args) => {
    const changed = args.map((a) => a.replace(' pci=off', ''))
    changed[changed.indexOf('-machine') + 1] += ',pcie=on'
    return [...changed, '-device', 'pcie-root-port,id=rp0,bus=pcie.0,chassis=1']
  },
}

let kernelVm
let imageVm
try {
  await diskRound() // warm-up: makes the template if this build has none yet (not counted)
  for (const key of ['firstAttach', 'attach', 'detach', 'exec']) samples[key] = []
  kernelVm = await VM.up()
  imageVm = await VM.up({ image: IMAGE })
  const floor = process.env.CONTROLLERS === '1' ? await floorSetup() : undefined
  for (let round = 0; round < ROUNDS; round++) {
    await diskRound()
    await powerRound(kernelVm, samples.kernel)
    await startWithDisk(kernelVm, samples.kernel.startWithDisk)
    await powerRound(imageVm, samples.image)
    if (floor)
      for (const [variant, adjust] of Object.entries(CONTROLLER_VARIANTS)) {
        const { ms, console } = await floorSample(floor, { adjust, timeoutMs: 300_000, what: variant })
        floors[variant].push(ms)
        if (variant === 'pcie' && /PCI: Fatal[^\n]*/.test(console))
          floors.pcieKernelSays = console.match(/PCI: Fatal[^\n]*/)[0]
      }
    const last = (values) => `${values.at(-1).toFixed(0)} ms`
    process.stderr.write(
      `  round ${round}: attach ${last(samples.firstAttach)} then ${last(samples.attach)}, detach ${last(samples.detach)}; ` +
        `kernel stop ${last(samples.kernel.stop)} start ${last(samples.kernel.start)} restart ${last(samples.kernel.restart)} hard ${last(samples.kernel.hardRestart)} start+disk ${last(samples.kernel.startWithDisk)}; ` +
        `image stop ${last(samples.image.stop)} start ${last(samples.image.start)} restart ${last(samples.image.restart)} hard ${last(samples.image.hardRestart)}\n`,
    )
  }
} finally {
  await kernelVm?.destroy()
  await imageVm?.destroy()
  rmSync(scratch, { recursive: true, force: true })
}

const n = ROUNDS
const lines = [
  `| ${'measure (TCG)'.padEnd(58)} | median   | min      | max      |`,
  `| ${'-'.repeat(58)} | -------- | -------- | -------- |`,
  msRow(`stop(), kernel mode, n=${n}`, samples.kernel.stop),
  msRow(`start(), kernel mode (template clone), n=${n}`, samples.kernel.start),
  msRow(`start(), kernel mode, one disk plugged at the stop, n=${n}`, samples.kernel.startWithDisk),
  msRow(`restart(), kernel mode, n=${n}`, samples.kernel.restart),
  msRow(`restart({ hard: true }), kernel mode, n=${n}`, samples.kernel.hardRestart),
  msRow(`stop(), image mode (Debian), n=${n}`, samples.image.stop),
  msRow(`start(), image mode (cold boot), n=${n}`, samples.image.start),
  msRow(`restart(), image mode, n=${n}`, samples.image.restart),
  msRow(`restart({ hard: true }), image mode, n=${n}`, samples.image.hardRestart),
  msRow(
    `attachDisk → guest sees it, first disk of a VM, n=${samples.firstAttach.length}`,
    samples.firstAttach,
  ),
  msRow(`attachDisk → guest sees it, later disks, n=${samples.attach.length}`, samples.attach),
  msRow(`detachDisk → gone from guest and QEMU, n=${samples.detach.length}`, samples.detach),
  msRow(`first exec(['true']) on the same fresh VMs, n=${samples.exec.length}`, samples.exec),
]
if (floors.base.length)
  lines.push(
    msRow(`floor: QEMU → init, as shipped (1 virtio-scsi), n=${floors.base.length}`, floors.base),
    msRow(
      `floor: one more virtio-scsi controller, n=${floors.extraController.length}`,
      floors.extraController,
    ),
    msRow(`floor: microvm pcie=on + a root port, n=${floors.pcie.length}`, floors.pcie),
  )
const ratio = (a, b) => (median(a) / median(b)).toFixed(2)
console.log(lines.join('\n'))
console.log(
  `ratios of medians: image start (cold) / kernel start (template) = ${ratio(samples.image.start, samples.kernel.start)}, ` +
    `kernel start with a disk / without = ${ratio(samples.kernel.startWithDisk, samples.kernel.start)}, ` +
    `restart / start: kernel ${ratio(samples.kernel.restart, samples.kernel.start)}, image ${ratio(samples.image.restart, samples.image.start)}, ` +
    `hard / soft restart: kernel ${ratio(samples.kernel.hardRestart, samples.kernel.restart)}, image ${ratio(samples.image.hardRestart, samples.image.restart)}, ` +
    `first attach / later attach = ${ratio(samples.firstAttach, samples.attach)}, later attach / first exec = ${ratio(samples.attach, samples.exec)}` +
    (floors.base.length
      ? `, floor with one more controller / as shipped = ${ratio(floors.extraController, floors.base)}, pcie / as shipped = ${ratio(floors.pcie, floors.base)}`
      : ''),
)
if (floors.pcieKernelSays) console.log(`with pcie=on the guest kernel says: ${floors.pcieKernelSays}`)
mkdirSync(join(root, 'bench-results'), { recursive: true })
writeFileSync(
  join(root, 'bench-results/lifecycle.json'),
  JSON.stringify({ date: new Date().toISOString(), rounds: ROUNDS, samples, floors }, null, 2),
)
