import { type ChildProcess, spawn } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import type net from 'node:net'
import { Duplex } from 'node:stream'
import { AGENT_VSOCK_PORT, MuxSession } from '@vmctl/agent'
import type { LaunchSpec } from '../launch-spec.js'
import type { logger } from '../log.js'
import { AGENT_PORT_DEVICE_ID } from '../qemu/qemu-command.js'
import type { QmpClient } from '../qemu/qmp-client.js'
import { pollUntil, sleep } from '../util/timing.js'
import { connectWhenReady } from '../util/unix-socket.js'
import { BootFailure } from './boot-deadline.js'
import { withParentDeathSignal } from './parent-death.js'
import type { QemuProcess } from './qemu-process.js'
import { tracePort } from './restore-timeline.js'
import type { VmDirectory } from './vm-directory.js'

/**
 * The host end of the agent channel: one MuxSession over the VM's transport, a virtio-serial port
 * (QEMU's chardev socket) or vsock (through `vsock-bridge`, as Node has no AF_VSOCK). Both
 * transports live here rather than in a file each: they differ in five short places, and every
 * one of them is about the session (attach, park, detach), which this class owns.
 *
 * Emits `lost` when the guest agent went away while connected (its process died): over
 * virtio-serial the guest closes the port (a QMP event), over vsock the bridge's connection ends;
 * a vsock link then waits for the restarted agent by itself.
 */
export class AgentLink extends EventEmitter<{ lost: [reason: string, how: 'port-closed' | 'vsock-closed'] }> {
  readonly mux = new MuxSession('host')
  private readonly spec: LaunchSpec
  private readonly dir: VmDirectory
  private readonly log: ReturnType<typeof logger>
  private portSocket: net.Socket | undefined
  private bridge: ChildProcess | undefined
  private cid: number | undefined

  constructor(spec: LaunchSpec, dir: VmDirectory, log: ReturnType<typeof logger>) {
    super()
    this.spec = spec
    this.dir = dir
    this.log = log
    this.mux.on('reset', (reason) => this.log('agent session reset: %s', reason))
  }

  get usesVsock(): boolean {
    return this.spec.transport.transport === 'vsock'
  }

  /** The guest's vsock CID, once reserved. */
  get vsockCid(): number | undefined {
    return this.cid
  }

  /** With vsock, vsock-bridge reserves a CID in the kernel and execs QEMU with the vhost fd. */
  commandPrefix(): string[] {
    return this.usesVsock ? [this.spec.transport.bridge!, 'with-cid', this.dir.vsockCidFile, '--'] : []
  }

  /**
   * Connects to `qemu`'s end of the channel and starts a session. `peerParked`: the guest was
   * restored from a state saved after park() (see MuxSession.attach).
   */
  async connect(qemu: QemuProcess, peerParked = false): Promise<void> {
    if (this.usesVsock) {
      const cid = await pollUntil(() => this.readCid(), {
        timeoutMs: Number.POSITIVE_INFINITY,
        everyMs: 5,
        stopIf: () => !qemu.alive,
      })
      if (!cid) throw new BootFailure('BOOT_FAILED', qemu.exitReason())
      this.cid = cid
      this.log('guest vsock CID %d', cid)
      this.connectVsock(cid, qemu)
      return
    }
    const socket = await connectWhenReady(qemu.portSocket, () => qemu.alive, 10)
    if (!socket) throw new BootFailure('BOOT_FAILED', qemu.exitReason())
    socket.on('error', (error) => this.log('agent port: %s', error.message))
    this.portSocket = socket
    tracePort(this.spec.name, socket)
    this.mux.attach(socket, { peerParked })
  }

  /**
   * After a snapshot was saved: a new session on the port, on the socket that stayed connected
   * (the guest parked its agent), or a new connection. Already attached after a restore, whose
   * port was connected before the state loaded.
   */
  async resume(qemu: QemuProcess): Promise<void> {
    const socket = this.portSocket
    if (this.mux.isAttached) return
    if (socket && !socket.destroyed && !this.usesVsock) this.mux.attach(socket, { peerParked: true })
    else await this.connect(qemu)
  }

  /** Watches QEMU's events for the guest closing the agent's port: its agent process died. */
  watchPort(qmp: QmpClient): void {
    qmp.on('event', (name, data) => {
      const port = data as { id?: string; open?: boolean } | undefined
      if (name !== 'VSERPORT_CHANGE' || port?.id !== AGENT_PORT_DEVICE_ID || port.open) return
      const reason = 'the guest closed the agent port'
      this.log('agent lost: %s', reason)
      this.emit('lost', reason, 'port-closed')
    })
  }

  /**
   * Before a state is saved: the guest agent ends its session and idles waiting for the next HELLO,
   * with the port's host side still connected (see MuxSession.park). A guest restored from that
   * state wakes on the new host's first bytes instead of polling a port that had no host. Over
   * vsock the connection itself goes (the guest's bridge listens again).
   */
  async park(timeoutMs: number): Promise<void> {
    if (this.usesVsock) {
      this.mux.detach('the VM is being snapshotted')
      this.stopBridge()
      await sleep(50)
      return
    }
    if (!(await this.mux.park(timeoutMs)))
      this.log('the guest agent did not acknowledge the park within %d ms; saving anyway', timeoutMs)
  }

  /** Drops the host end of the channel; calls in flight fail, new ones wait for a reconnect. */
  detach(reason: string): void {
    this.stopBridge()
    this.mux.detach(reason)
    this.dropPort()
  }

  /** Closes the port's socket only (the session was parked: see park). */
  dropPort(): void {
    this.portSocket?.destroy()
    this.portSocket = undefined
  }

  private readCid(): number | undefined {
    try {
      const cid = Number.parseInt(readFileSync(this.dir.vsockCidFile, 'utf8'), 10)
      return cid > 2 ? cid : undefined
    } catch {
      return undefined
    }
  }

  /**
   * `vsock-bridge connect` retries until the agent listens, then carries the connection over its
   * stdio. When the guest closes it (the agent died), open channels fail at once and a new bridge
   * waits for the restarted agent.
   */
  private connectVsock(cid: number, qemu: QemuProcess): void {
    const [file, args] = withParentDeathSignal([
      this.spec.transport.bridge!,
      'connect',
      String(cid),
      String(AGENT_VSOCK_PORT),
    ])
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    this.bridge = child
    child.stderr?.on('data', (chunk: Buffer) => this.log('vsock-bridge: %s', chunk.toString().trimEnd()))
    child.once('error', (error) => this.log('vsock-bridge: %s', error.message))
    const transport = Duplex.from({ readable: child.stdout!, writable: child.stdin! })
    transport.on('error', (error) => this.log('vsock transport: %s', error.message))
    child.once('exit', () => {
      // Stopped on purpose (detach, park): not a lost agent.
      if (this.bridge !== child) return
      this.bridge = undefined
      const reason = 'the guest agent closed its vsock connection'
      this.log('agent lost: %s', reason)
      this.emit('lost', reason, 'vsock-closed')
      void sleep(50).then(() => {
        if (!this.bridge && this.cid === cid && qemu.alive) this.connectVsock(cid, qemu)
      })
    })
    this.mux.attach(transport)
  }

  private stopBridge(): void {
    const bridge = this.bridge
    this.bridge = undefined
    bridge?.kill('SIGKILL')
  }

  /** Ends the link for good (the teardown): no reconnect follows. */
  close(reason: string): void {
    this.cid = undefined
    this.detach(reason)
  }
}
