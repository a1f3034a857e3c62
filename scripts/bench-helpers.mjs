// What the benchmarks share: the built core, medians, timing, and the floor (QEMU spawn → the
// first line of vmctl's init on the serial console, nothing of the agent) with its QEMU plan.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = fileURLToPath(new URL('..', import.meta.url))

/** A module of the built core (packages/core/dist). */
export const core = (path) => import(join(root, 'packages/core/dist', path))

export const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** How long `work` took, in ms. */
export async function timed(work) {
  const started = performance.now()
  await work()
  return performance.now() - started
}

/**
 * What a floor sample needs, built once: the kernel, vmctl's initramfs and runtime disk, and
 * `plan(dir)`, the default VM's QEMU arguments (sockets in `dir`) without anything of a supervisor.
 */
export async function floorSetup(accel = 'tcg') {
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
      }),
  }
}

/**
 * One floor sample: QEMU with `setup.plan()` (changed by `adjust(args)` if given) spawned, timed
 * to the init's first console line. Resolves with `{ ms, console }`; QEMU is killed after.
 */
export async function floorSample(
  setup,
  { adjust = (args) => args, timeoutMs = 120_000, what = 'floor' } = {},
) {
  const dir = mkdtempSync(join(tmpdir(), 'vmctl-bench-floor-'))
  const args = adjust(setup.plan(dir))
  const started = performance.now()
  const qemu = spawn(setup.qemu, args, { stdio: ['ignore', 'pipe', 'ignore'] })
  let console = ''
  try {
    const ms = await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${what}: no init line within ${timeoutMs / 1000} s`)),
        timeoutMs,
      )
      qemu.stdout.on('data', (chunk) => {
        console += chunk
        if (console.includes('vmctl-init: started')) {
          clearTimeout(timer)
          resolve(performance.now() - started)
        }
      })
      qemu.on('exit', () => reject(new Error(`${what}: QEMU exited early`)))
    })
    return { ms, console }
  } finally {
    qemu.removeAllListeners('exit')
    qemu.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A markdown table row: label, median, min, max (ms). */
export function msRow(label, values, width = 58) {
  const cell = (ms) => `${ms.toFixed(0)} ms`.padStart(8)
  return `| ${label.padEnd(width)} | ${cell(median(values))} | ${cell(Math.min(...values))} | ${cell(Math.max(...values))} |`
}
