import net from 'node:net'
import { encodeMessage, LineDecoder } from '../util/lines.js'

/**
 * The client half of a test run's shared-VM keeper (vm/shared-vm-keeper.ts holds the server):
 * here, below vm/ and network/, since both `VM.upShared()` and `VmNetwork.shared()` ask it.
 */

/** Where a test run's shared-VM keeper listens; set by `startSharedVmKeeper()` for the workers. */
export const SHARED_KEEPER_ENV = 'VMCTL_SHARED_KEEPER'

/**
 * Asks the run's keeper (if this process runs under one) to hold a lease on the VM, or with
 * `network`, on the network (`VmNetwork.shared()`), until the run ends.
 */
export async function askKeeperToHold(name: string, kind: 'vm' | 'network' = 'vm'): Promise<void> {
  const path = process.env[SHARED_KEEPER_ENV]
  if (!path) return
  try {
    const reply = await request(path, { hold: name, network: kind === 'network' })
    if (reply.error) throw new Error(String(reply.error))
  } catch (error) {
    // Not fatal: the VM then lives as long as the processes that use it.
    process.stderr.write(
      `vmctl: the test run's shared-VM keeper (${path}) could not hold ${name}: ${(error as Error).message}\n`,
    )
  }
}

function request(path: string, message: unknown): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path)
    const decoder = new LineDecoder()
    socket.setEncoding('utf8')
    socket.once('connect', () => socket.write(encodeMessage(message)))
    socket.on('data', (chunk: string) => {
      const [reply] = decoder.push(chunk)
      if (reply) {
        socket.end()
        resolve(reply as Record<string, unknown>)
      }
    })
    socket.once('error', reject)
    socket.once('close', () => reject(new Error('the keeper closed the connection')))
  })
}
