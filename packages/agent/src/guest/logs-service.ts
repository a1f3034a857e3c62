import { closeSync, constants as fsConstants, openSync, readSync } from 'node:fs'
import type { ServerWritableStream } from '@grpc/grpc-js'
import type { LogEntry, LogsRequest } from '../generated/vmctl/agent/v1/agent.js'
import { type AgentLogLine, agentLog } from './agent-log.js'

const KMSG_POLL_MS = 200

/** One /dev/kmsg record: "priority,sequence,timestamp_us,flags;message". */
export function parseKmsgRecord(record: string): LogEntry | undefined {
  const semicolon = record.indexOf(';')
  if (semicolon < 0) return undefined
  const [prefix, sequence, timestamp] = record.slice(0, semicolon).split(',')
  if (prefix === undefined || sequence === undefined || timestamp === undefined) return undefined
  const message = record
    .slice(semicolon + 1)
    .split('\n')[0]!
    .replace(/\\x([0-9a-f]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
  return { source: 'kernel', timestampUs: Number(timestamp), message, priority: Number(prefix) & 7 }
}

/** Reads every kmsg record available now from a non-blocking fd. */
function drainKmsg(fd: number, buffer: Buffer, emit: (entry: LogEntry) => void): void {
  for (;;) {
    let n: number
    try {
      n = readSync(fd, buffer, 0, buffer.length, null)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'EAGAIN') return
      if (code === 'EPIPE') continue // records were overwritten while we read; go on
      throw error
    }
    if (n <= 0) return
    const entry = parseKmsgRecord(buffer.toString('utf8', 0, n))
    if (entry) emit(entry)
  }
}

export function handleLogs(call: ServerWritableStream<LogsRequest, LogEntry>): void {
  const sources = call.request.sources.length > 0 ? call.request.sources : ['kernel', 'agent']
  const follow = call.request.follow
  const cleanups: Array<() => void> = []
  const send = (entry: LogEntry) => {
    if (!call.cancelled) call.write(entry)
  }
  if (sources.includes('kernel')) {
    try {
      const fd = openSync('/dev/kmsg', fsConstants.O_RDONLY | fsConstants.O_NONBLOCK)
      const buffer = Buffer.alloc(8192)
      drainKmsg(fd, buffer, send)
      if (follow) {
        const timer = setInterval(() => drainKmsg(fd, buffer, send), KMSG_POLL_MS)
        cleanups.push(() => clearInterval(timer))
      }
      cleanups.push(() => closeSync(fd))
    } catch (error) {
      send({
        source: 'agent',
        timestampUs: Date.now() * 1000,
        message: `cannot read /dev/kmsg: ${(error as Error).message}`,
        priority: 3,
      })
    }
  }
  if (sources.includes('agent')) {
    const toEntry = (line: AgentLogLine): LogEntry => ({
      source: 'agent',
      timestampUs: line.timestampUs,
      message: line.message,
      priority: 6,
    })
    for (const line of agentLog.history()) send(toEntry(line))
    if (follow) {
      const onLine = (line: AgentLogLine) => send(toEntry(line))
      agentLog.on('line', onLine)
      cleanups.push(() => agentLog.off('line', onLine))
    }
  }
  const done = () => {
    for (const cleanup of cleanups.splice(0)) cleanup()
  }
  if (!follow) {
    done()
    call.end()
    return
  }
  call.on('cancelled', done)
  call.on('close', done)
}
