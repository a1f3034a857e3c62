import { appendFileSync, readdirSync, readFileSync } from 'node:fs'
import type net from 'node:net'
import { logger } from '../log.js'

/**
 * A restore's timeline for `DEBUG=vmctl:timeline` (scripts/bench-first-command.mjs reads it):
 * named moments as wall-clock milliseconds since the epoch, so that the caller's own stamps (a
 * separate process on the same host) line up with the supervisor's, plus the first chunks each way
 * on the agent's port. Costs one check of `enabled` when off.
 */
const log = logger('timeline')
/**
 * VMCTL_TIMELINE_FILE: each stamp is also appended there as a JSON line, from every process that
 * stamps (the caller, the supervisor), so a timeline outlives the VM's directory and its log
 * (scripts/bench-cli.mjs reads it for one `vmctl run`).
 */
const file = process.env.VMCTL_TIMELINE_FILE

/** How many chunks each way a port's trace logs: a first command is a few dozen. */
const TRACED_CHUNKS = 60

/** The QEMU whose CPU time each stamp carries (one supervisor runs one VM's QEMU at a time). */
let qemuPid: number | undefined

/** Stamps from now on carry the CPU time of QEMU process `pid`: the guest's work, not the host's load. */
export function watchQemu(pid: number | undefined): void {
  qemuPid = pid
}

/** Stamps `what` for the VM `vm`. */
export function mark(vm: string, what: string): void {
  if (!log.enabled && file === undefined) return
  const at = (performance.timeOrigin + performance.now()).toFixed(1)
  const cpu = qemuCpuMs()
  if (log.enabled) log('%s %s cpu=%s %s', vm, at, cpu, what)
  if (file === undefined) return
  // The stamping process's own CPU time too: what the supervisor (or the caller) spent so far.
  const { user, system } = process.cpuUsage()
  const line = { vm, at: Number(at), qemuCpu: cpu, pid: process.pid, ownCpu: (user + system) / 1000, what }
  try {
    appendFileSync(file, `${JSON.stringify(line)}\n`)
  } catch {}
}

/** Stamps `what` at a time taken earlier (`at`: ms since the epoch), e.g. the process's own start. */
export function markAt(vm: string, what: string, at: number): void {
  if (file === undefined) return
  try {
    appendFileSync(file, `${JSON.stringify({ vm, at, qemuCpu: '-', pid: process.pid, what })}\n`)
  } catch {}
}

/** CPU ms of the watched QEMU, summed over its threads (schedstat: ns on a CPU). */
function qemuCpuMs(): string {
  if (!qemuPid) return '-'
  try {
    let ns = 0
    for (const task of readdirSync(`/proc/${qemuPid}/task`))
      ns += Number(readFileSync(`/proc/${qemuPid}/task/${task}/schedstat`, 'utf8').split(' ')[0])
    return (ns / 1e6).toFixed(1)
  } catch {
    return '-'
  }
}

/** Stamps the first chunks written to and read from the agent's port (mux frames, handshake lines). */
export function tracePort(vm: string, socket: net.Socket): void {
  if (!log.enabled) return
  let read = 0
  let written = 0
  socket.on('data', (chunk: Buffer) => {
    if (read++ < TRACED_CHUNKS) mark(vm, `port <- ${describe(chunk)}`)
  })
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean
  socket.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (written++ < TRACED_CHUNKS && Buffer.isBuffer(chunk)) mark(vm, `port -> ${describe(chunk)}`)
    return write(chunk, ...rest)
  }) as typeof socket.write
}

/** A chunk's first frame (type, channel) or handshake line, and its size. */
function describe(chunk: Buffer): string {
  const types = ['?', 'OPEN', 'DATA', 'END', 'CLOSE', 'WINDOW', 'PARK']
  if (chunk.length >= 11 && chunk[0] === 0xe7 && chunk[1] === 0x4d)
    return `${types[chunk[2]!] ?? '?'} ch${chunk.readUInt32BE(3)} len ${chunk.readUInt32BE(7)} (${chunk.length} B)`
  return `${JSON.stringify(chunk.subarray(0, 40).toString('latin1'))} (${chunk.length} B)`
}
