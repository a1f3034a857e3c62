/**
 * Entry point of a VM's supervisor process: `node supervisor-main.js <vm-directory>`. Started
 * detached by VM.up(); see supervisor.ts.
 *
 * Its first act is the QEMU that VM.up() planned for a template clone (early-qemu.ts), if any;
 * the rest of the supervisor (supervisor-load.ts: supervisor.ts and all it imports, grpc-js
 * included) loads after that, while QEMU starts; in the bundle it is a file of its own, loaded
 * through V8's code cache (code-cache.ts).
 */
import { existsSync, readFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import type { LaunchSpec } from '../launch-spec.js'
import { requireWithCodeCache } from './code-cache.js'
import { EarlyQemu, readEarlyQemuPlan } from './early-qemu.js'

type SupervisorLoad = typeof import('./supervisor-load.js')

const path = process.argv[2]
if (!path) {
  process.stderr.write('usage: supervisor-main <vm-directory>\n')
  process.exit(2)
}
const spec = JSON.parse(readFileSync(`${path}/launch.json`, 'utf8')) as LaunchSpec
process.title = `vmctl-supervisor ${spec.name}`
const early = EarlyQemu.start(readEarlyQemuPlan())
const earlyAt = performance.timeOrigin + performance.now()

/** The bundle's second file (scripts/bundle-supervisor.mjs), beside this one when this is the bundle. */
function bundledCore(): string | undefined {
  if (typeof __dirname !== 'string') return undefined // an ES module: the unbundled build
  const file = join(__dirname, 'supervisor-core.cjs')
  return existsSync(file) ? file : undefined
}

async function main(): Promise<void> {
  const core = bundledCore()
  const cached = core ? requireWithCodeCache<SupervisorLoad>(core, spec.cacheDir) : undefined
  const { Supervisor, VmDirectory, mark, markAt } = cached?.exports ?? (await import('./supervisor-load.js'))
  markAt(spec.name, 'supervisor: process started', performance.timeOrigin)
  if (early) markAt(spec.name, 'qemu spawned', earlyAt)
  mark(spec.name, 'supervisor: modules loaded, launch.json read')
  process.on('exit', () => mark(spec.name, 'supervisor: exit'))
  const dir = new VmDirectory(basename(path!), { ...process.env, VMCTL_RUNTIME_DIR: dirname(dirname(path!)) })
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
