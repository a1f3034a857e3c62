import { closeSync, constants as fsConstants, openSync } from 'node:fs'
import type { ServerWritableStream } from '@grpc/grpc-js'
import type { LogEntry, LogsRequest } from '../generated/vmctl/agent/v1/agent.js'
import { type AgentLogLine, agentLog } from './agent-log.js'
import { drainKmsg } from './kernel-log.js'

const KMSG_POLL_MS = 200

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
