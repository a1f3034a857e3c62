import { VmctlError } from '../errors.js'
import { NetworkDirectory } from './network-directory.js'
import { NetworkClient } from './network-protocol.js'

/**
 * A lease on a running network, for a process that holds it on others' behalf (the test run's
 * shared keeper, vm/shared-vm-keeper.ts): a control connection that sent `hold`. `onEnd` is called
 * when the connection ends: the switch went first, or the holder's own `close()`.
 */
export async function holdNetwork(name: string, onEnd: () => void): Promise<{ close(): void }> {
  const directory = new NetworkDirectory(name)
  const client = await NetworkClient.connect(directory.controlSocket, name).catch(() => {
    throw new VmctlError('NETWORK_GONE', `network ${name} is not running (no switch at ${directory.path})`)
  })
  try {
    await client.request({ op: 'hold' })
  } catch (error) {
    client.close()
    throw error
  }
  client.unref()
  client.onClose(onEnd)
  return client
}
