import { dirname } from 'node:path'
import type { LaunchSpec } from '../launch-spec.js'
import { hostsScript, withHostsLock } from '../network/guest-hosts.js'
import type { MemberInfo } from '../network/network-directory.js'
import { NetworkDirectory } from '../network/network-directory.js'
import { NetworkClient } from '../network/network-protocol.js'
import { nicScript } from '../network/nic-script.js'
import { sleep } from '../util/timing.js'
import { agentClient } from '../vm/agent-client.js'
import { runShellInGuest } from './guest-exec.js'
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
  budgetMs = REJOIN_BUDGET_MS,
): Promise<string | undefined> {
  const addresses = spec.networkAddresses ?? []
  if (addresses.length === 0) return undefined
  // The runtime directory the VM's is in (<runtime>/vms/<name>), as supervisor-main.ts takes it:
  // the supervisor's environment need not name it.
  const env = { ...process.env, VMCTL_RUNTIME_DIR: dirname(dirname(directory.path)) }
  const clients: NetworkClient[] = []
  const rejoin = async () => {
    const hosts: string[] = []
    for (const { network } of addresses) {
      const switchDirectory = new NetworkDirectory(network, env)
      const client = await NetworkClient.connect(switchDirectory.controlSocket, network).catch(() => {
        throw new Error(`network ${network} is not running any more (no switch at ${switchDirectory.path})`)
      })
      clients.push(client)
      const { version, members } = await client.request({ op: 'members' })
      hosts.push(hostsScript(network, version as number, members as MemberInfo[]))
      client.close()
    }
    const script = [...addresses.map((address, index) => nicScript(index, address)), ...hosts].join('\n')
    await withHostsLock(spec.name, () => runInGuest(directory, script), env)
  }
  // The whole of it within the budget, not only the guest's command: a switch that is alive but
  // does not answer (stopped, wedged), or a hosts lock another process keeps, would otherwise
  // leave start() and restart() in `starting` for ever, with no error.
  const over = new AbortController()
  const late = sleep(budgetMs, over.signal).then(() => {
    throw new Error(
      `no answer within ${budgetMs / 1000} s (a network switch that does not answer, or another process holding the VM's hosts lock)`,
    )
  })
  try {
    await Promise.race([rejoin(), late])
    return undefined
  } catch (error) {
    return `the VM's network addresses and names were not given again after the start: ${(error as Error).message}`
  } finally {
    over.abort()
    late.catch(() => {})
    for (const client of clients) client.close()
  }
}

/** A shell command through the guest agent; rejects with its stderr when it fails. */
function runInGuest(directory: Pick<VmDirectory, 'agentSocket' | 'rawSocket'>, shell: string): Promise<void> {
  const agent = agentClient(directory)
  return runShellInGuest(agent, shell, REJOIN_BUDGET_MS).finally(() => agent.close())
}
