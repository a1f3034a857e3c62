import type { DiskFullPaused } from './disk-full-pause.js'

/**
 * The supervisor's control socket speaks newline-delimited JSON. Requests carry `op`; the
 * supervisor answers each with `{ reply: op, ... }` and pushes `{ event }` messages to attached
 * clients. A client attached with `lease: true` keeps a non-persistent VM alive: when the last
 * lease's connection closes (the creator exited, crashed or was SIGKILLed: the kernel closes its
 * sockets either way), the VM is destroyed.
 */
export type ControlRequest =
  | { op: 'attach'; lease: boolean }
  | { op: 'status' }
  /**
   * A spare VM taken by VM.up() (supervisor/spare-park.ts): renamed to `name`, resumed and
   * refreshed. Replies `{ ok }` once renamed (or `{ ok: false, error }`); `ready` follows.
   * `lease`: the adopting connection takes the VM's lease with it (a spare no process leased:
   * LaunchSpec.spareIdleMs), so that nothing of the VM outlives its adopter.
   */
  | { op: 'adopt'; name: string; createdAt: string; lease?: boolean }
  /**
   * Ends the VM; replies once QEMU is gone and the directory removed, or with `handOff`, once the
   * teardown has begun (the supervisor then finishes it alone: `vmctl run` need not wait for it).
   */
  | { op: 'destroy'; handOff?: boolean }
  /** Saves the running VM as `name` (replies `{ ok, error? }`). */
  | { op: 'snapshot'; name: string }
  /** Puts the VM back to snapshot `name`, in place: same name, sockets and ports. */
  | { op: 'restore'; name: string }
  /**
   * Powers the guest off; the VM stays defined (`stopped`: name, directory, disks, host ports) until
   * `start` or `destroy`. Replies `{ ok, how, alreadyStopped? }`; stopping a stopped VM is a no-op.
   */
  | { op: 'stop' }
  /** Boots a stopped VM again from its disks; replies `{ ok }` once it is ready, or `{ ok: false, error }`. */
  | { op: 'start' }
  /** Reboots the guest (`hard`: a reset through QMP) and replies once it is ready again. */
  | { op: 'restart'; hard: boolean }
  /** Plugs a disk file into the running VM (replies `{ ok, disk | code, error }`): disk-hotplug.ts. */
  | { op: 'attach-disk'; path: string; format: 'qcow2' | 'raw'; readOnly: boolean; serial?: string }
  | { op: 'detach-disk'; path: string }
  /** The disks plugged into the VM (replies `{ ok, disks }`). */
  | { op: 'disks' }
  /** Network NIC `nic` (the position in `networks`) link up or down, as the guest sees it: nic-links.ts. */
  | { op: 'set-link'; nic: number; up: boolean }
  /**
   * Forwards guest port `guestPort` (TCP unless `protocol` says udp) from 127.0.0.1:`hostPort` (the
   * kernel picks one without it) while the VM runs, and in every later QEMU of the VM:
   * port-forwards.ts. Replies `{ ok, hostPort }` or `{ ok: false, error, code }`; a `ports` event
   * tells every attached client.
   */
  | { op: 'forward-port'; guestPort: number; protocol?: 'tcp' | 'udp'; hostPort?: number }

/**
 * `powering-off` → `stopped` is `vm.stop()`; `starting` is `vm.start()` or `vm.restart()` on the
 * way back to `ready`; `stopping` → `exited` is the end (destroy, the last lease gone, QEMU died
 * while booting or restoring; QEMU dying while `ready` leaves it `stopped`).
 */
export type VmState = 'booting' | 'ready' | 'powering-off' | 'stopped' | 'starting' | 'stopping' | 'exited'

export interface VmStatus {
  name: string
  state: VmState
  pid: number
  qemuPid: number | undefined
  accel: string
  accelReason: string
  /** How the host reaches the agent; with vsock, the guest's CID. */
  transport: 'virtio-serial' | 'vsock'
  vsockCid?: number | undefined
  /** Booted from this template (key); `made`: this boot made it first. Absent: a cold boot. */
  template?: { key: string; made: boolean } | undefined
  /** Things the user should know about this VM's start (a template rebuilt, say). */
  warnings?: string[]
  /**
   * A spare VM (vm/spare-vm.ts) waiting for a VM.up() to take it: `booting` until warmed, then
   * `parked` (paused). Absent on every other VM.
   */
  spare?: 'booting' | 'parked' | undefined
  /** This VM was a spare, called this, until its VM.up() took it. */
  fromSpare?: string | undefined
  createdAt: string
  persistent: boolean
  /** guest port → host port */
  ports: Record<string, number>
  bootMs: number | undefined
  /** While `stopped`: how it stopped, and whether vmctl asked (stop(), a failed start) or not. */
  stopped?: StopCause | undefined
  /**
   * While QEMU holds the guest paused because a disk file's filesystem is full (disk-full-pause.ts):
   * which file, and where to free space. The guest goes on by itself once there is room.
   */
  diskFull?: DiskFullPaused | undefined
}

/**
 * Why a stopped VM is stopped. `unexpected`: its QEMU ended without vmctl asking (killed from
 * outside, the guest powered off or panicked); `vmctl ps` flags such a VM, and `start()` boots it.
 */
export interface StopCause {
  how: string
  unexpected: boolean
  at: string
}

export interface ErrorPayload {
  code: string
  message: string
  consoleTail: string
  accel: string
  timeoutMs: number
  /** A timeout's QEMU: the CPU time it used in the wall time it ran (a stuck guest uses little). */
  qemu?: { cpuMs: number; ranMs: number }
}

export type ControlEvent =
  | { event: 'ready'; status: VmStatus }
  | { event: 'failed'; error: ErrorPayload }
  | { event: 'exited'; reason: string; consoleTail: string }
  /** The guest agent process went away (it is restarted by the guest's init). */
  | { event: 'agent-lost'; reason: string }
  /**
   * The VM was stopped (`how`: the guest powered off, or forced), a start or restart failed, or
   * (`unexpected`) its QEMU ended without being asked, with the console's last lines.
   */
  | { event: 'stopped'; how: string; unexpected?: boolean; consoleTail?: string }
  /** QEMU paused the guest: a write to a disk file found its filesystem full (disk-full-pause.ts). */
  | { event: 'disk-full'; paused: DiskFullPaused }
  /** The paused guest was resumed: its disk file's filesystem has room again. */
  | { event: 'disk-room' }
  /** A guest port was forwarded while the VM ran (`forward-port`): every forward now, guest → host. */
  | { event: 'ports'; ports: Record<string, number> }

export type ControlMessage = ControlEvent | ({ reply: string } & Record<string, unknown>)
