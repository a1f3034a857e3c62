/**
 * Entry point of a network's switch process: `node switch-main.js <network-directory>`. Started
 * detached by VmNetwork.create(); see switch-server.ts.
 */
import { basename, dirname } from 'node:path'
import { NetworkDirectory } from './network-directory.js'
import { SwitchServer } from './switch-server.js'

const path = process.argv[2]
if (!path) {
  process.stderr.write('usage: switch-main <network-directory>\n')
  process.exit(2)
}
// Its stdout and stderr are the network's log: a write a full disk fails must not stop the switch.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {})
// The directory is <runtime>/networks/<name>: the runtime directory is two levels up.
const directory = new NetworkDirectory(basename(path), {
  ...process.env,
  VMCTL_RUNTIME_DIR: dirname(dirname(path)),
})
const launch = directory.readLaunch()
process.title = `vmctl-switch ${launch.name}`
const server = new SwitchServer(directory, launch)
// A switch in an unknown state must not linger: remove its directory and go.
process.on('uncaughtException', (error) => {
  process.stderr.write(`vmctl switch: uncaught ${error.stack ?? error}\n`)
  server.stop(`error: ${error.message}`)
})
void server.run()
