/**
 * Entry point of a VM's supervisor process: `node supervisor-main.js <vm-directory>`, started
 * detached by VM.up(); see supervisor.ts. Or `node supervisor-main.js --await-launch`, started
 * before the VM exists (early-launch.ts): it loads, then reads its VM directory on stdin (or reads
 * it first, if it is there already).
 *
 * Its first act is the QEMU that VM.up() planned for a template clone (early-qemu.ts), if any;
 * the rest of the supervisor (supervisor-load.ts: supervisor.ts and all it imports, grpc-js
 * included) loads after that, while QEMU starts (started early, before its VM is known: it loads
 * first, unless the launch is on its stdin already, early-launch.ts);
 * in the bundle it is a file of its own, loaded through V8's code cache (code-cache.ts).
 */
import { existsSync, readFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import type { LaunchSpec } from '../launch-spec.js'
import { type CodeCached, cacheDirFromEnv, requireWithCodeCache } from './code-cache.js'
import { type EarlyLaunch, EarlyLaunchReader, writeOutputTo } from './early-launch.js'
import { EarlyQemu, type EarlyQemuPlan, readEarlyQemuPlan } from './early-qemu.js'
import { startPrestartedQemu } from './prestarted-qemu.js'

type SupervisorLoad = typeof import('./supervisor-load.js')

const argument = process.argv[2]
if (!argument) {
  process.stderr.write('usage: supervisor-main <vm-directory> | --await-launch\n')
  process.exit(2)
}
// Its stdout and stderr are the VM's supervisor.log: on a full disk a write fails with an 'error'
// event, which unheard would end the supervisor and its VM. The log is not worth the VM.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {})

/** The bundle's second file (scripts/bundle-supervisor.mjs), beside this one when this is the bundle. */
function bundledCore(): string | undefined {
  if (typeof __dirname !== 'string') return undefined // an ES module: the unbundled build
  const file = join(__dirname, 'supervisor-core.cjs')
  return existsSync(file) ? file : undefined
}

/** The supervisor's modules, through the code cache when this is the bundle. */
function load(cacheDir: string): { cached: CodeCached<SupervisorLoad> | undefined } {
  const core = bundledCore()
  return { cached: core ? requireWithCodeCache<SupervisorLoad>(core, cacheDir) : undefined }
}

let path = ''
let spec: LaunchSpec
let early: EarlyQemu | undefined
let launchAt: number | undefined
let earlyAt: number | undefined
let loaded: { cached: CodeCached<SupervisorLoad> | undefined; error?: unknown } | undefined
let waiting: EarlyLaunchReader | undefined

/** The VM handed to a supervisor started early: its log, its spec, its QEMU started. */
function launched(launch: EarlyLaunch): void {
  path = launch.path
  launchAt = performance.timeOrigin + performance.now()
  writeOutputTo(join(path, 'supervisor.log'))
  spec = JSON.parse(readFileSync(`${path}/launch.json`, 'utf8')) as LaunchSpec
  // The QEMU started before the VM was known stands for this VM's clone, or another is started.
  if (early?.waiting && early.stands(parsePlan(launch.plan), path)) return
  if (early)
    process.stderr.write(
      `vmctl supervisor: the QEMU started for the next VM (prestarted-qemu.ts) ${early.waiting ? 'runs another command than this VM would' : 'exited'}: started this VM's own\n`,
    )
  early?.discard()
  early = EarlyQemu.start(launch.plan)
  earlyAt = performance.timeOrigin + performance.now()
}

function parsePlan(text: string): EarlyQemuPlan | undefined {
  try {
    return JSON.parse(text) as EarlyQemuPlan
  } catch {
    return undefined
  }
}

if (argument === '--await-launch') {
  process.title = 'vmctl-supervisor (waiting for its VM)'
  // The QEMU of the VM its creator will most likely ask for next, if it planned one.
  early = startPrestartedQemu()
  if (early) earlyAt = performance.timeOrigin + performance.now()
  // A launch already there starts its QEMU before the loading (early-launch.ts); else the
  // loading goes first: that is what this early start is for, and the launch is awaited in main().
  const reader = new EarlyLaunchReader()
  const arrived = reader.now()
  if (arrived !== 'pending') {
    if (!arrived.launch) process.exit(0) // the caller booted no VM, or died before it made one
    launched(arrived.launch)
  } else waiting = reader
  // A failure is told once the log exists.
  try {
    loaded = load(cacheDirFromEnv())
  } catch (error) {
    loaded = { cached: undefined, error }
  }
} else {
  path = argument
  spec = JSON.parse(readFileSync(`${path}/launch.json`, 'utf8')) as LaunchSpec
  early = EarlyQemu.start(readEarlyQemuPlan())
  earlyAt = performance.timeOrigin + performance.now()
}

async function main(): Promise<void> {
  if (waiting) {
    const launch = await waiting.whole()
    if (!launch) process.exit(0)
    launched(launch)
  }
  process.title = `vmctl-supervisor ${spec.name}`
  if (loaded?.error) throw loaded.error
  const cached = (loaded ?? load(spec.cacheDir)).cached
  const { Supervisor, VmDirectory, mark, markAt } = cached?.exports ?? (await import('./supervisor-load.js'))
  markAt(spec.name, 'supervisor: process started', performance.timeOrigin)
  if (launchAt) markAt(spec.name, 'supervisor: launch received (started early)', launchAt)
  if (early && earlyAt) markAt(spec.name, 'qemu spawned', earlyAt)
  mark(spec.name, 'supervisor: modules loaded, launch.json read')
  process.on('exit', () => mark(spec.name, 'supervisor: exit'))
  const dir = new VmDirectory(basename(path), { ...process.env, VMCTL_RUNTIME_DIR: dirname(dirname(path)) })
  const supervisor = new Supervisor(dir, spec, early)
  // A supervisor in an unknown state must not keep a VM alive: stop it and go.
  process.on('uncaughtException', (error) => {
    process.stderr.write(`vmctl supervisor: uncaught ${error.stack ?? error}\n`)
    const exit = () => process.exit(1)
    supervisor.shutdown(`supervisor error: ${error.message}`).then(exit, exit)
    setTimeout(exit, 5_000).unref()
  })
  // Once a boot went through, the code cache keeps what it compiled (code-cache.ts).
  void supervisor.run().then(() => supervisor.status().state === 'ready' && cached?.save())
}

main().catch((error) => {
  // Its QEMU, if started, dies with this process (parent-death signal).
  process.stderr.write(`vmctl supervisor: could not start: ${(error as Error).stack ?? error}\n`)
  process.exit(1)
})
