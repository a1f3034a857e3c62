// Hot-plugged disks (part of `pnpm bench`), measured in one run so that ratios hold on a noisy host.
//
// Each round, on a fresh VM restored from the default template:
//   first attach   vm.attachDisk() → the guest sees the disk, on a VM whose SCSI drivers are not
//                  loaded yet (the agent loads them: what the first disk of every VM costs)
//   attach         the same on the same VM, drivers loaded
//   detach         vm.detachDisk() → gone from the guest and from QEMU
//   exec           one exec(['true']) round trip on that VM, for scale
// With CONTROLLERS=1 it also times, interleaved, QEMU spawn → the init's first console line (the
// floor of bench.mjs) for: the VM as it is (a virtio-scsi controller present from boot), one more
// such controller (what the first one costs a boot), and microvm `pcie=on` with a root port (the
// PCIe hot-plug candidate: `pci=off` dropped from the kernel command line). docs/disks.md has the
// figures.
//
// Options: ROUNDS=n (default 5), CONTROLLERS=1. Results also go to bench-results/disks.json.
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const core = (path) => import(join(root, 'packages/core/dist', path))
const { VM, VmDisk } = await core('index.js')
const ROUNDS = Number(process.env.ROUNDS ?? 5)
const scratch = mkdtempSync(join(tmpdir(), 'vmctl-bench-disks-'))
process.env.VMCTL_DISKS_DIR = join(scratch, 'disks')

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
const time = async (work) => {
  const started = performance.now()
  await work()
  return performance.now() - started
}

const samples = { firstAttach: [], attach: [], detach: [], exec: [] }
const floors = { base: [], extraController: [], pcie: [] }

async function diskRound() {
  const vm = await VM.up()
  const disk = await VmDisk.create({ sizeMiB: 64 })
  try {
    samples.exec.push(await time(() => vm.exec(['true'])))
    samples.firstAttach.push(await time(() => vm.attachDisk(disk)))
    samples.detach.push(await time(() => vm.detachDisk(disk)))
    samples.attach.push(await time(() => vm.attachDisk(disk)))
    samples.detach.push(await time(() => vm.detachDisk(disk)))
  } finally {
    await vm.destroy()
    await disk.delete()
  }
}

async function floorSample(variant, base) {
  const dir = mkdtempSync(join(tmpdir(), 'vmctl-bench-floor-'))
  let args = base.plan(dir)
  if (variant === 'extraController') args.push('-device', 'virtio-scsi-device,id=bench-scsi2')
  if (variant === 'pcie') {
    args = args.map((a) => a.replace(' pci=off', ''))
    args[args.indexOf('-machine') + 1] += ',pcie=on'
    args.push('-device', 'pcie-root-port,id=rp0,bus=pcie.0,chassis=1')
  }
  const started = performance.now()
  const qemu = spawn(base.qemu, args, { stdio: ['ignore', 'pipe', 'ignore'] })
  let console = ''
  try {
    const ms = await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`floor ${variant}: no init line within 300 s`)),
        300_000,
      )
      qemu.stdout.on('data', (chunk) => {
        console += chunk
        if (console.includes('vmctl-init: started')) {
          clearTimeout(timer)
          resolve(performance.now() - started)
        }
      })
      qemu.on('exit', () => reject(new Error(`floor ${variant}: QEMU exited early`)))
    })
    floors[variant].push(ms)
    if (variant === 'pcie' && /PCI: Fatal[^\n]*/.test(console))
      floors.pcieKernelSays = console.match(/PCI: Fatal[^\n]*/)[0]
  } finally {
    qemu.removeAllListeners('exit')
    qemu.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
}

async function floorBase() {
  const { locateKernel } = await core('host/kernel-locator.js')
  const { hostTscKhz } = await core('host/accelerator.js')
  const { buildInitramfs } = await core('initramfs/initramfs-builder.js')
  const { buildRuntimeDisk } = await core('initramfs/runtime-disk.js')
  const { qemuArguments } = await core('qemu/qemu-command.js')
  const { cacheDir } = await core('paths.js')
  const { which, locateQemu } = await core('host/qemu-locator.js')
  const kernel = locateKernel()
  const cache = cacheDir()
  const initramfs = await buildInitramfs({
    kernel,
    nodeBinary: process.execPath,
    busybox: which('busybox', `${process.env.PATH}:/bin`),
    cacheDir: cache,
  })
  const runtimeDisk = await buildRuntimeDisk(process.execPath, cache)
  return {
    qemu: locateQemu(),
    plan: (dir) =>
      qemuArguments({
        binary: 'qemu',
        accel: 'tcg',
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
      }),
  }
}

try {
  await diskRound() // warm-up: makes the template if this build has none yet (not counted)
  for (const key of Object.keys(samples)) samples[key] = []
  const base = process.env.CONTROLLERS === '1' ? await floorBase() : undefined
  for (let round = 0; round < ROUNDS; round++) {
    await diskRound()
    if (base) for (const variant of ['base', 'extraController', 'pcie']) await floorSample(variant, base)
    process.stderr.write(
      `  round ${round}: first attach ${samples.firstAttach.at(-1).toFixed(0)} ms, attach ${samples.attach.at(-1).toFixed(0)} ms, detach ${samples.detach.at(-1).toFixed(0)} ms${base ? `, floors ${['base', 'extraController', 'pcie'].map((v) => floors[v].at(-1).toFixed(0)).join('/')} ms` : ''}\n`,
    )
  }
} finally {
  rmSync(scratch, { recursive: true, force: true })
}

const row = (label, values) =>
  `| ${label.padEnd(58)} | ${`${median(values).toFixed(0)} ms`.padStart(8)} | ${`${Math.min(...values).toFixed(0)} ms`.padStart(8)} | ${`${Math.max(...values).toFixed(0)} ms`.padStart(8)} |`
const lines = [
  `| ${'measure (TCG)'.padEnd(58)} | median   | min      | max      |`,
  `| ${'-'.repeat(58)} | -------- | -------- | -------- |`,
  row(`attachDisk → guest sees it, first disk of a VM, n=${samples.firstAttach.length}`, samples.firstAttach),
  row(`attachDisk → guest sees it, drivers loaded, n=${samples.attach.length}`, samples.attach),
  row(`detachDisk → gone from guest and QEMU, n=${samples.detach.length}`, samples.detach),
  row(`first exec(['true']) on the same fresh VMs, n=${samples.exec.length}`, samples.exec),
]
if (floors.base.length) {
  lines.push(
    row(`floor: QEMU → init, as shipped (1 virtio-scsi), n=${floors.base.length}`, floors.base),
    row(`floor: one more virtio-scsi controller, n=${floors.extraController.length}`, floors.extraController),
    row(`floor: microvm pcie=on + a root port, n=${floors.pcie.length}`, floors.pcie),
  )
}
console.log(lines.join('\n'))
console.log(
  `ratios of medians: attach (drivers loaded) / first exec = ${(median(samples.attach) / median(samples.exec)).toFixed(1)}, ` +
    `first attach / attach = ${(median(samples.firstAttach) / median(samples.attach)).toFixed(2)}` +
    (floors.base.length
      ? `, floor with one more controller / as shipped = ${(median(floors.extraController) / median(floors.base)).toFixed(3)}, pcie / as shipped = ${(median(floors.pcie) / median(floors.base)).toFixed(3)}`
      : ''),
)
if (floors.pcieKernelSays) console.log(`with pcie=on the guest kernel says: ${floors.pcieKernelSays}`)
mkdirSync(join(root, 'bench-results'), { recursive: true })
writeFileSync(
  join(root, 'bench-results/disks.json'),
  JSON.stringify({ date: new Date().toISOString(), rounds: ROUNDS, samples, floors }, null, 2),
)
