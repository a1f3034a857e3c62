import { dirname } from 'node:path'
import { Metadata } from '@grpc/grpc-js'
import type { ExecResponse } from '@vmctl/agent'
import type { LaunchSpec } from '../launch-spec.js'
import { hostsScript, withHostsLock } from '../network/guest-hosts.js'
import type { MemberInfo } from '../network/network-directory.js'
import { NetworkDirectory } from '../network/network-directory.js'
import { NetworkClient } from '../network/network-protocol.js'
import { nicScript } from '../network/nic-script.js'
import { agentClient } from '../vm/agent-client.js'
import type { VmDirectory } from './vm-directory.js'

/** The NICs' and names' setup is one shell command; far more than it takes on a loaded TCG host. */
const REJOIN_BUDGET_MS = 60_000

/**
 * After a start or restart (a new QEMU, a guest booted cold or from a template): the guest's network
 * NICs have their template MACs and no address, and /etc/hosts lost the members' names. The switch
 * still has the VM as a member (its watch on this supervisor never closed), so this gives the guest
 * its MACs and addresses again (from the launch spec) and each network's names list as the switch
 * has it now. Here, in the supervisor, so it holds whoever started the VM (`vm.start()`, `vmctl
 * restart`, another process's handle). Resolves with a warning, or undefined when all went well.
 */
export async function rejoinNetworks(
  spec: LaunchSpec,
  directory: Pick<VmDirectory, 'agentSocket' | 'rawSocket' | 'path'>,
): Promise<string | undefined> {
  const addresses = spec.networkAddresses ?? []
  if (addresses.length === 0) return undefined
  // The runtime directory the VM's is in (<runtime>/vms/<name>), as supervisor-main.ts takes it:
  // the supervisor's environment need not name it.
  const env = { ...process.env, VMCTL_RUNTIME_DIR: dirname(dirname(directory.path)) }
  try {
    const hosts: string[] = []
    for (const { network } of addresses) {
      const switchDirectory = new NetworkDirectory(network, env)
      const client = await NetworkClient.connect(switchDirectory.controlSocket, network).catch(() => {
        throw new Error(`network ${network} is not running any more (no switch at ${switchDirectory.path})`)
      })
      try {
        const { version, members } = await client.request({ op: 'members' })
        hosts.push(hostsScript(network, version as number, members as MemberInfo[]))
      } finally {
        client.close()
      }
    }
    const script = [...addresses.map((address, index) => nicScript(index, address)), ...hosts].join('\n')
    await withHostsLock(spec.name, () => runInGuest(directory, script), env)
    return undefined
  } catch (error) {
    return `the VM's network addresses and names were not given again after the start: ${(error as Error).message}`
  }
}

/** A shell command through the guest agent; rejects with its stderr when it fails. */
function runInGuest(directory: Pick<VmDirectory, 'agentSocket' | 'rawSocket'>, shell: string): Promise<void> {
  const agent = agentClient(directory)
  return new Promise<void>((resolve, reject) => {
    const stderr: Buffer[] = []
    const call = agent.exec(new Metadata(), { deadline: new Date(Date.now() + REJOIN_BUDGET_MS) })
    call.on('data', (response: ExecResponse) => {
      const kind = response.kind
      if (kind?.$case === 'stderr') stderr.push(kind.value)
      if (kind?.$case !== 'exit') return
      if (kind.value.exitCode === 0) resolve()
      else
        reject(
          new Error(
            `exit ${kind.value.exitCode}${kind.value.signal ? ` (${kind.value.signal})` : ''}: ${Buffer.concat(stderr).toString().trim()}`,
          ),
        )
    })
    call.on('error', reject)
    call.on('end', () => reject(new Error('the agent ended the command without an exit status')))
    call.write({
      kind: {
        $case: 'start',
        value: { argv: [], shell, env: {}, cwd: '/', user: '', stdin: false, timeoutMs: REJOIN_BUDGET_MS },
      },
    })
    call.end()
  }).finally(() => agent.close())
}
