import { credentials, Metadata } from '@grpc/grpc-js'
import { HealthClient, type MuxSession, ServingStatus } from '@vmctl/agent'
import { sleep } from '../util/timing.js'
import { BootFailure, type Deadline, deadlineSignal } from './boot-deadline.js'
import { RootMountError } from './guest-setup-port.js'
import type { QemuProcess } from './qemu-process.js'
import { mark } from './restore-timeline.js'

/** Health service the agent reports SERVING as soon as it answers, before the root is mounted. */
export const AGENT_HEALTH_SERVICE = 'vmctl.agent'

/**
 * Ready for commands: the agent answers on its channel (the multiplexer's session is up, so its
 * event loop runs with its gRPC server in place) and guest-setup reports the root mounted. No
 * gRPC call is needed: after a restore every HTTP/2 connection is set up by a guest whose
 * translation cache is cold, and VM.up()'s caller has already started its own.
 */
export async function untilReady(
  mux: MuxSession,
  qemu: QemuProcess,
  deadline: Deadline,
  /** The VM's name, for its timeline (restore-timeline.ts). */
  vm = '',
  /** Called as soon as the root is mounted (before the agent's session, if that comes later). */
  onRootMounted: () => void = () => {},
): Promise<void> {
  const port = await qemu.setupPort
  if (!port) throw new BootFailure('BOOT_FAILED', qemu.exitReason())
  const signal = deadlineSignal(deadline)
  const session = new Promise<void>((resolve, reject) => {
    if (mux.isReady) return resolve()
    const ready = () => {
      signal.removeEventListener('abort', aborted)
      resolve()
    }
    const aborted = () => {
      mux.off('ready', ready)
      reject(new BootFailure('BOOT_TIMEOUT', 'the agent did not answer in time'))
    }
    mux.once('ready', ready)
    signal.addEventListener('abort', aborted)
  })
  const root = port.rootReady(signal).then(
    () => {
      onRootMounted()
      mark(vm, 'root mounted')
    },
    (error: Error) => {
      if (error instanceof RootMountError)
        throw new BootFailure('BOOT_FAILED', `the guest could not mount its root: ${error.message}`)
      if (signal.aborted) throw new BootFailure('BOOT_TIMEOUT', 'the guest did not mount its root in time')
      throw error
    },
  )
  await Promise.all([session, root])
}

/** A health client over the VM's agent socket: reconnects with a short backoff after restores. */
export function healthClient(agentSocket: string): HealthClient {
  return new HealthClient(`unix://${agentSocket}`, credentials.createInsecure(), {
    'grpc.initial_reconnect_backoff_ms': 50,
    'grpc.max_reconnect_backoff_ms': 250,
  })
}

/** Resolves once the agent reports `service` SERVING (gRPC health watch), within the deadline. */
export async function untilHealthy(
  client: HealthClient,
  service: string,
  deadline: Deadline,
  log: (format: string, ...args: unknown[]) => void,
): Promise<void> {
  for (;;) {
    const status = await new Promise<ServingStatus | Error>((resolve) => {
      const metadata = new Metadata()
      metadata.setOptions({ waitForReady: true })
      const call = client.watch({ service }, metadata, {
        deadline: new Date(Date.now() + Math.max(1, deadline.at - performance.now())),
      })
      call.on('data', (response: { status: ServingStatus }) => {
        if (response.status === ServingStatus.SERVING) {
          resolve(ServingStatus.SERVING)
          call.cancel()
        }
      })
      call.on('error', (error: Error) => resolve(error))
      call.on('end', () => resolve(new Error('health watch ended')))
    })
    if (status === ServingStatus.SERVING) return
    if (performance.now() >= deadline.at)
      throw new BootFailure('BOOT_TIMEOUT', 'the agent did not report healthy in time')
    log('health watch: %s', (status as Error).message)
    await sleep(100)
  }
}
