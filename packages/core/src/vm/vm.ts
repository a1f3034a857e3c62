import type { InfoResponse } from '@vmctl/agent'
import { loadConfig, mergeOptions } from '../config/config-file.js'
import {
  type AttachDiskOptions,
  attachDisk,
  type DiskAttachment,
  type DiskVmContext,
  detachDisk,
  listDisks,
} from '../disks/disk-attach.js'
import type { VmDisk } from '../disks/vm-disk.js'
import { AgentError, VmExitedError, VmNotFoundError, VmStoppedError } from '../errors.js'
import { onItsNetworks } from '../network/guest-network.js'
import { memberAddressOf, type VmNetwork } from '../network/vm-network.js'
import { type ObservedVm, observeHost } from '../observer/host-observer.js'
import type { PortProtocol } from '../qemu/guest-port.js'
import { guestPathIn, readLaunchSpec } from '../read-launch-spec.js'
import type { VmState } from '../supervisor/control-protocol.js'
import type { AttachedDisk } from '../supervisor/disk-hotplug.js'
import { attachVm } from './attach-vm.js'
import { execIn, spawnIn } from './exec.js'
import type { ExecResult } from './exec-result.js'
import * as files from './files.js'
import { type GuestLogEntry, type LogsOptions, streamLogs } from './guest-logs.js'
import type { ListeningPort } from './listening-ports.js'
import { type ForwardPortOptions, forwardedPort, forwardPort } from './port-forward.js'
import { provisioningVm } from './provisioning-vm.js'
import { type SharedVmOptions, upShared } from './shared-vm.js'
import { spareSupervisorAtDestroy } from './spare-supervisor.js'
import { spareVmWaiting } from './spare-vm.js'
import { startVm } from './start-vm.js'
import { CALL_TIMEOUT_MS, VmConnection, type VmParts } from './vm-connection.js'
import { guestIp } from './vm-ip.js'
import { type VmOptions, validateVmOptions } from './vm-options.js'
import type { StopResult } from './vm-power.js'
import type { ExecOptions, FileOptions, SpawnOptions, VmProcess, WaitForPortOptions } from './vm-types.js'
import { type WaitForCommandOptions, waitForCommand } from './wait-for-command.js'
import { listeningPorts, waitForPort } from './wait-for-port.js'

/**
 * A running VM. Get one with `VM.up()`; dispose of it with `destroy()` or `await using`.
 *
 * The facade of the caller's side: the factories and getters live here; calls go through a
 * VmConnection (vm-connection.ts) to exec.ts and files.ts; boots through start-vm.ts.
 *
 * @example
 * ```ts
 * await using vm = await VM.up()
 * const { stdout } = await vm.exec('uname -r')
 * ```
 */
export class VM implements AsyncDisposable {
  readonly name: string
  private readonly connection: VmConnection
  private readonly destroyOnClose: boolean

  /** @internal Use VM.up() or VM.attach(). */
  constructor(parts: VmParts, destroyOnClose: boolean) {
    this.connection = new VmConnection(parts)
    this.name = this.connection.name
    this.destroyOnClose = destroyOnClose
  }

  /**
   * Boots a fresh VM and resolves once its agent answers and its root is mounted. Given a path, the
   * VM is described by that vmctl.toml (docs/config.md), and `options` override the file's fields.
   *
   * @example
   * ```ts
   * await using vm = await VM.up('vmctl.toml', { memoryMiB: 2048 })
   * ```
   */
  static up(options?: VmOptions): Promise<VM>
  static up(configFile: string, options?: VmOptions): Promise<VM>
  static async up(first?: VmOptions | string, overrides?: VmOptions): Promise<VM> {
    const options =
      typeof first === 'string'
        ? mergeOptions(loadConfig(first, { name: overrides?.name }).options, validateVmOptions(overrides))
        : first
    const parts = await startVm(options, { provisioner: provisioningVm })
    return onItsNetworks(new VM(parts, !options?.persistent), parts.networks, (other) => VM.attach(other))
  }

  /**
   * Boots a VM that outlives this process (like `vmctl up`): `close()` leaves it running, reach it
   * with `vmctl exec NAME -- sh`, end it with `destroy()` or `vmctl down NAME`.
   */
  static upPersistent(options?: Omit<VmOptions, 'persistent'>): Promise<VM> {
    return VM.up({ ...options, persistent: true })
  }

  /**
   * The VM called `name`, booted once and used by every process that asks (test workers), counted
   * across processes and destroyed when the last one lets go. See `upShared` in shared-vm.ts.
   */
  static async upShared(name: string, options?: SharedVmOptions): Promise<VM> {
    const parts = await upShared(name, options)
    return onItsNetworks(new VM(parts, false), parts.networks, (other) => VM.attach(other))
  }

  /**
   * Every VM of this user on this host, with its state and what is out of place about it (a dead
   * supervisor, a QEMU gone): `observeHost()` has the whole list of findings, `gcHost()` repairs.
   */
  static list(): ObservedVm[] {
    return observeHost().vms
  }

  /** A handle on a running VM made elsewhere (`vmctl up`); `close()` leaves the VM running. */
  static async attach(name: string): Promise<VM> {
    const attached = await attachVm(name, { lease: false, env: {}, allowStopped: true })
    if (typeof attached === 'string') throw new VmNotFoundError(name)
    return new VM(attached, false)
  }

  /** "kvm" or "tcg". */
  get accel(): string {
    return this.connection.status.accel
  }

  /** How the host reaches the agent: "vsock" or "virtio-serial" (see VmOptions.transport). */
  get transport(): 'vsock' | 'virtio-serial' {
    return this.connection.status.transport
  }

  /**
   * The template this VM was restored from (`made`: this boot made it first), or undefined for a
   * cold boot (VMCTL_TEMPLATES=0, a KVM probe boot, or a template that could not be used).
   */
  get template(): { key: string; made: boolean } | undefined {
    return this.connection.status.template
  }

  /** The guest's vsock CID (vsock transport only). */
  get vsockCid(): number | undefined {
    return this.connection.status.vsockCid
  }

  /**
   * Milliseconds from QEMU spawn to agent ready, as measured by the supervisor; for a VM that was
   * a spare (`fromSpare`), from VM.up() taking it to ready.
   */
  get bootMs(): number | undefined {
    return this.connection.status.bootMs
  }

  /**
   * The name this VM had as a spare, when VM.up() took one (restored, warmed and paused ahead of
   * it; see docs/spare-vm.md); undefined for a VM booted for its VM.up().
   */
  get fromSpare(): string | undefined {
    return this.connection.status.fromSpare
  }

  /**
   * What the user should know about this VM's start, one sentence each: KVM was not usable so it
   * runs under TCG (not said when TCG was asked for), a template was unusable and rebuilt. vmctl
   * itself prints nothing; the test adapters and the CLI print these (each text once per process).
   */
  get warnings(): readonly string[] {
    const { accel, accelReason, warnings = [] } = this.connection.status
    // accelReason ends in "=tcg" when VMCTL_ACCEL=tcg or accel: 'tcg' chose it: nothing to warn of.
    if (accel !== 'tcg' || !accelReason || /=tcg$/.test(accelReason)) return warnings
    return [`KVM is not usable, using TCG software emulation (5-10x slower): ${accelReason}`, ...warnings]
  }

  /** Every forwarded port: guest port → host port on 127.0.0.1. */
  get ports(): Record<number, number> {
    return Object.fromEntries(
      Object.entries(this.connection.status.ports).map(([guest, host]) => [Number(guest), host]),
    )
  }

  /**
   * Its IPv4 address. Without an argument: on its default network (QEMU's user network, the one
   * `ports` forward to), asked of the guest. With `network` (one it joined with
   * `VM.up({ networks })`): its address there, e.g. "10.213.0.10", known without asking.
   */
  ip(): Promise<string>
  ip(network: VmNetwork | string): string
  ip(network?: VmNetwork | string): string | Promise<string> {
    if (network === undefined) return this.info().then((info) => guestIp(this.name, info))
    return memberAddressOf(network, this.name)
  }

  /**
   * Forwards `guestPort` from 127.0.0.1 while the VM runs, as `ports` does at `VM.up()`, and
   * resolves with the host port (the kernel picks it unless `hostPort` is given); from then on
   * `forwardedPort(guestPort)` knows it. It lasts as long as the VM (a stop and start keep it).
   */
  forwardPort(guestPort: number, options?: ForwardPortOptions): Promise<number> {
    return forwardPort(this.connection, guestPort, options)
  }

  /** The host port (on 127.0.0.1) that reaches `guestPort` (TCP, or UDP with `'udp'`) in the VM. */
  forwardedPort(guestPort: number, protocol: PortProtocol = 'tcp'): number {
    return forwardedPort(this.connection, guestPort, protocol)
  }

  /** The TCP sockets listening in the guest (its first network namespace), from its /proc/net. */
  listeningPorts(): Promise<ListeningPort[]> {
    return listeningPorts(this.connection)
  }

  /**
   * Resolves once something in the guest listens on TCP `port` (any address, IPv4 or IPv6), read
   * from the guest's /proc/net through the agent. Past `timeoutMs` (default 60 s) rejects with a
   * PortWaitTimeoutError listing what does listen. For a server started with spawn(), prefer
   * `process.waitForPort(port)`: it also fails at once if the server exits.
   */
  async waitForPort(port: number, options: WaitForPortOptions = {}): Promise<void> {
    await waitForPort(this.connection, port, options)
  }
  /**
   * Runs `command` until it exits 0 and resolves with that run's result (testcontainers'
   * `Wait.forSuccessfulCommand`, NixOS's `wait_until_succeeds`): `vm.waitForCommand('pg_isready')`.
   * A try every `intervalMs` (250) after the last ended; past `timeoutMs` (60 s) a
   * CommandWaitTimeoutError with the last try's exit and output.
   */
  waitForCommand(command: string | string[], options?: WaitForCommandOptions): Promise<ExecResult> {
    return waitForCommand(this.connection, command, options)
  }

  /**
   * Runs a command in the VM: a string goes to /bin/sh -c, an array is argv. Resolves with exit
   * code, stdout and stderr kept apart; rejects with an ExecError carrying the same fields if the
   * command fails, unless `reject: false`.
   */
  exec(command: string | string[], options: ExecOptions & { encoding: 'buffer' }): Promise<ExecResult<Buffer>>
  exec(command: string | string[], options?: ExecOptions): Promise<ExecResult>
  exec(command: string | string[], options: ExecOptions = {}): Promise<ExecResult<string | Buffer>> {
    return execIn(this.connection, command, options)
  }

  /**
   * Starts a process in the background and returns a handle: live output streams, `wait()`,
   * `kill()`. The process is reaped in the guest when it exits.
   */
  spawn(command: string | string[], options: SpawnOptions = {}): VmProcess {
    return spawnIn(this.connection, command, options)
  }

  /**
   * Where a host path is seen in the guest, or undefined when it is not: in kernel mode the host
   * root is the guest's (same paths); in image mode only `mounts` reach the host. The CLI runs
   * commands in the guest's view of the current directory, or in / when it has none.
   */
  guestPathOf(hostPath: string): string | undefined {
    const spec = readLaunchSpec(this.connection.directory.launchFile)
    return spec && guestPathIn(spec, hostPath)
  }

  /** Copies a local file into the guest, atomically (temp file, then rename). */
  async push(localPath: string, remotePath: string, options: FileOptions = {}): Promise<void> {
    await files.push(this.connection, localPath, remotePath, options)
  }

  /** Writes `data` to a guest file, atomically. */
  async writeFile(remotePath: string, data: string | Buffer, options: FileOptions = {}): Promise<void> {
    await files.writeFile(this.connection, remotePath, data, options)
  }

  /** A guest file's contents. Rejects with code NOT_FOUND naming the path if it is missing. */
  async pull(remotePath: string, options: { timeoutMs?: number } = {}): Promise<Buffer> {
    return files.pull(this.connection, remotePath, options)
  }

  /** A guest file as text (or bytes with encoding "buffer"). */
  readFile(remotePath: string): Promise<string>
  readFile(remotePath: string, encoding: 'buffer'): Promise<Buffer>
  async readFile(remotePath: string, encoding: 'utf8' | 'buffer' = 'utf8'): Promise<string | Buffer> {
    if (encoding === 'buffer') return this.pull(remotePath)
    return (await files.pull(this.connection, remotePath, {}, 'a string')).toString('utf8')
  }

  /** Streams a guest file to a local path (for files too big to hold in memory). */
  async pullTo(remotePath: string, localPath: string, options: { timeoutMs?: number } = {}): Promise<void> {
    await files.pullTo(this.connection, remotePath, localPath, options)
  }

  /** Copies a local directory into the guest (created, with parents, if missing). */
  async copyDirTo(localDir: string, remoteDir: string, options: FileOptions = {}): Promise<void> {
    await files.copyDirTo(this.connection, localDir, remoteDir, options)
  }

  /** Copies a guest directory to a local one (created if missing). */
  async copyDirFrom(
    remoteDir: string,
    localDir: string,
    options: { timeoutMs?: number } = {},
  ): Promise<void> {
    await files.copyDirFrom(this.connection, remoteDir, localDir, options)
  }

  /** Kernel release, OS, uptime, CPUs, memory and addresses of the guest. */
  async info(): Promise<InfoResponse> {
    this.connection.assertUsable()
    return this.connection.unary<InfoResponse>('info', (agent, ...call) => agent.info({}, ...call))
  }

  /**
   * Plugs a disk into the running VM; resolves when the guest sees it, with where (docs/disks.md).
   * A file or VmDisk; `readOnly` is read-only in the guest too.
   */
  async attachDisk(disk: VmDisk | string, options?: AttachDiskOptions): Promise<DiskAttachment> {
    this.connection.assertUsable()
    return attachDisk(this.diskContext(), disk, options)
  }

  /**
   * Unplugs a disk; resolves when it is gone from the guest and from QEMU. Refuses a mounted one.
   * On a stopped VM, the disk leaves the list of disks its next start plugs in again.
   */
  async detachDisk(disk: VmDisk | string, options?: { force?: boolean; timeoutMs?: number }): Promise<void> {
    if (this.state !== 'stopped') this.connection.assertUsable()
    return detachDisk(this.diskContext(), disk, options)
  }

  /** The disks plugged into this VM (a stopped VM's: those its next start plugs in again). */
  async disks(): Promise<AttachedDisk[]> {
    if (this.state !== 'stopped') this.connection.assertUsable()
    return listDisks(this.diskContext())
  }

  private diskContext(): DiskVmContext {
    const connection = this.connection
    return {
      name: this.name,
      control: connection.control,
      agent: () => connection.agent,
      stopped: () => connection.state === 'stopped',
    }
  }

  /**
   * The guest's logs: kernel log, the agent's own log, and the serial console, from the start of
   * boot; with `follow`, new entries as they come until the loop breaks or the VM ends.
   */
  logs(options: LogsOptions = {}): AsyncIterable<GuestLogEntry> {
    this.connection.assertUsable()
    return streamLogs(this.connection.agent, this.connection.directory.consoleLog, options)
  }

  /** Powers the guest off (or reboots it, which under vmctl also ends the VM) and cleans up. */
  async shutdown(options: { reboot?: boolean } = {}): Promise<void> {
    this.connection.assertUsable()
    try {
      await this.connection.unary<unknown>('shutdown', (agent, ...call) =>
        agent.shutdown({ reboot: !!options.reboot }, ...call),
      )
    } catch (error) {
      // The guest may be gone before its answer arrives: that is the point.
      if (!(error instanceof VmExitedError || error instanceof VmStoppedError)) throw error
    }
    // Wait (bounded) for the supervisor to see QEMU exit (the VM is then stopped), then destroy it.
    await this.connection.untilDown(CALL_TIMEOUT_MS)
    await this.destroy()
  }

  /**
   * Saves the running VM (memory, devices, processes) as `name`, kept in the VM's directory until it
   * is destroyed. Calls in flight while it is taken fail; the VM then runs on. QEMU cannot save a VM
   * whose root is the host's over 9p (the default kernel mode): use `hostRoot: false` or an image.
   */
  async snapshot(name: string): Promise<void> {
    await this.connection.snapshotRequest({ op: 'snapshot', name })
  }

  /**
   * Puts the VM back to snapshot `name` in place: the same handle, name and forwarded ports, with
   * the guest clock stepped to now and its RNG reseeded. Running processes and calls in flight end.
   */
  async restore(name: string): Promise<void> {
    this.connection.failRunning(new AgentError(this.name, `the VM was restored to snapshot ${name}`))
    await this.connection.snapshotRequest({ op: 'restore', name })
  }

  /**
   * Where the VM is in its life: `ready`, `stopped` after `stop()`, `exited` once destroyed or
   * dead; `powering-off` and `starting` while `stop()`, `start()` or `restart()` run.
   */
  get state(): VmState {
    return this.connection.state
  }

  /**
   * Powers the guest off (it syncs its disks; QEMU is killed if it has not gone within 15 s, and
   * `forced` says so). The VM stays defined: name, directory, disks and forwarded host ports are
   * kept, and every call but `start()` and `destroy()` rejects with a VmStoppedError. Stopping a
   * stopped VM does nothing (`how` says it was already stopped).
   */
  stop(): Promise<StopResult> {
    return this.connection.stop()
  }

  /** Boots a stopped VM again from its disks; resolves when it is ready. */
  start(): Promise<void> {
    return this.connection.start()
  }

  /**
   * Reboots the guest and resolves when the VM is ready again: same handle, name, disks and
   * forwarded ports. `hard`: a reset through QEMU (nothing synced), not a guest reboot. Running
   * processes and calls in flight end.
   */
  restart(options: { hard?: boolean } = {}): Promise<void> {
    return this.connection.restart(options.hard === true)
  }

  /**
   * Stops the VM and removes everything it had on the host. Idempotent. `waitForExit: false`
   * resolves once the VM's supervisor has begun that (no call reaches the guest any more, QEMU is
   * being quit) instead of once it is done: the supervisor finishes alone, within a few seconds
   * (`vmctl run` exits without waiting for QEMU's exit).
   */
  destroy(options: { waitForExit?: boolean } = {}): Promise<void> {
    // For this process's next VM.up(), if it makes VMs one after another (a spare VM has its own).
    if (!spareVmWaiting()) spareSupervisorAtDestroy(this.connection.directory)
    return this.connection.destroy(options.waitForExit === false)
  }

  /**
   * Drops this handle. A VM made by VM.up() is destroyed; a persistent or attached one keeps
   * running.
   */
  async close(): Promise<void> {
    if (this.destroyOnClose) return this.destroy()
    this.connection.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}
