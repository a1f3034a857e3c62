/**
 * Entry point of a VM's supervisor process: `node supervisor-main.js <vm-directory>`. Started
 * detached by VM.up(); see supervisor.ts.
 */
import { readFileSync } from 'node:fs'
import { basename, dirname } from 'node:path'
import type { LaunchSpec } from '../launch-spec.js'
import { mark, markAt } from './restore-timeline.js'
import { Supervisor } from './supervisor.js'
import { VmDirectory } from './vm-directory.js'

const path = process.argv[2]
if (!path) {
  process.stderr.write('usage: supervisor-main <vm-directory>\n')
  process.exit(2)
}
const spec = JSON.parse(readFileSync(`${path}/launch.json`, 'utf8')) as LaunchSpec
const dir = new VmDirectory(basename(path), { ...process.env, VMCTL_RUNTIME_DIR: dirname(dirname(path)) })
process.title = `vmctl-supervisor ${spec.name}`
markAt(spec.name, 'supervisor: process started', performance.timeOrigin)
mark(spec.name, 'supervisor: modules loaded, launch.json read')
process.on('exit', () => mark(spec.name, 'supervisor: exit'))
const supervisor = new Supervisor(dir, spec)
// A supervisor in an unknown state must not keep a VM alive: stop it and go.
process.on('uncaughtException', (error) => {
  process.stderr.write(`vmctl supervisor: uncaught ${error.stack ?? error}\n`)
  const exit = () => process.exit(1)
  supervisor.shutdown(`supervisor error: ${error.message}`).then(exit, exit)
  setTimeout(exit, 5_000).unref()
})
void supervisor.run()
