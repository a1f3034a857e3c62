// What the benchmarks share: the built core, medians, timing, and the floor (QEMU spawn → the
// first line of vmctl's init on the serial console, nothing of the agent) with its QEMU plan.
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
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

function rawConnect(path, service) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path, () => {
      socket.write(`${service}\n`)
      resolve(socket)
    })
    socket.on('error', reject)
  })
}

/** Pushes `bytes` into the guest over a raw multiplexer channel (no gRPC): the floor for push. */
export async function rawSink(path, bytes) {
  const socket = await rawConnect(path, 'raw-sink')
  const block = Buffer.alloc(1024 * 1024)
  let left = bytes
  while (left > 0) {
    const chunk = left >= block.length ? block : block.subarray(0, left)
    left -= chunk.length
    if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r))
  }
  socket.end()
  let answer = ''
  for await (const chunk of socket) answer += chunk
  if (Number(answer) !== bytes) throw new Error(`raw sink counted ${answer.trim()} of ${bytes} bytes`)
}

/** Pulls `bytes` from the guest over a raw multiplexer channel: the floor for pull. */
export async function rawSource(path, bytes) {
  const socket = await rawConnect(path, `raw-source ${bytes}`)
  let received = 0
  for await (const chunk of socket) received += chunk.length
  if (received !== bytes) throw new Error(`raw source sent ${received} of ${bytes} bytes`)
}

/** Runs `work` with `env` set in this process's environment, restoring what was there after. */
export async function withEnv(env, work) {
  const saved = Object.fromEntries(Object.keys(env).map((key) => [key, process.env[key]]))
  Object.assign(process.env, env)
  try {
    return await work()
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key]
      else process.env[key] = value
    }
  }
}

/** CPU time of a process and all its threads (QEMU's vCPUs included), in ms; 0 once it is gone. */
export function cpuMs(pid) {
  let ns = 0
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0])
      } catch {}
    }
  } catch {}
  return ns / 1e6
}

/** This process's own CPU time, in ms. */
export function ownCpuMs() {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}
