import { closeSync, openSync, readSync, statSync } from 'node:fs'
import { StringDecoder } from 'node:string_decoder'
import { Metadata } from '@grpc/grpc-js'
import type { AgentClient, LogEntry } from '@vmctl/agent'

export interface LogsOptions {
  /** Keep going: yield new entries as they come until the loop stops or the VM ends. */
  follow?: boolean
  /** Which logs; default all three. */
  sources?: Array<'kernel' | 'agent' | 'console'>
}

export interface GuestLogEntry {
  source: 'kernel' | 'agent' | 'console'
  /** Microseconds: since guest boot for kernel entries, since the epoch otherwise. */
  timestampUs: number
  message: string
  /** syslog priority (kernel entries); 6 otherwise. */
  priority: number
}

const CONSOLE_POLL_MS = 200

/**
 * Merges the agent's log stream (kernel log and the agent's own) with the serial console, which
 * the VM's supervisor writes to console.log on the host (it holds boot messages from before the
 * agent ran, and panics).
 */
export async function* streamLogs(
  agent: AgentClient,
  consoleLog: string,
  options: LogsOptions,
): AsyncGenerator<GuestLogEntry> {
  const sources = options.sources ?? ['kernel', 'agent', 'console']
  const queue: GuestLogEntry[] = []
  let wake: (() => void) | undefined
  let pendingSources = 0
  let failure: Error | undefined
  const push = (entry: GuestLogEntry) => {
    queue.push(entry)
    wake?.()
  }
  const sourceDone = () => {
    pendingSources--
    wake?.()
  }

  const agentSources = sources.filter((s) => s !== 'console')
  const call =
    agentSources.length > 0
      ? agent.logs(
          { follow: !!options.follow, sources: agentSources },
          new Metadata(),
          options.follow ? {} : { deadline: new Date(Date.now() + 30_000) },
        )
      : undefined
  if (call) {
    pendingSources++
    call.on('data', (entry: LogEntry) => push({ ...entry, source: entry.source as GuestLogEntry['source'] }))
    call.on('end', sourceDone)
    call.on('error', (error: Error & { code?: number }) => {
      if (error.code !== 1) failure = error // 1 = CANCELLED, which we asked for
      sourceDone()
    })
  }

  let consoleTimer: NodeJS.Timeout | undefined
  if (sources.includes('console')) {
    let offset = 0
    let partial = ''
    const decoder = new StringDecoder('utf8')
    const readConsole = () => {
      let fd: number
      try {
        if (statSync(consoleLog).size <= offset) return
        fd = openSync(consoleLog, 'r')
      } catch {
        return
      }
      try {
        const buffer = Buffer.alloc(64 * 1024)
        for (;;) {
          const n = readSync(fd, buffer, 0, buffer.length, offset)
          if (n <= 0) break
          offset += n
          const lines = (partial + decoder.write(buffer.subarray(0, n))).split('\n')
          partial = lines.pop() ?? ''
          for (const line of lines) {
            const message = line.replace(/\r$/, '')
            if (message) push({ source: 'console', timestampUs: Date.now() * 1000, message, priority: 6 })
          }
        }
      } finally {
        closeSync(fd)
      }
    }
    readConsole()
    if (options.follow) consoleTimer = setInterval(readConsole, CONSOLE_POLL_MS)
  }

  try {
    for (;;) {
      while (queue.length > 0) yield queue.shift()!
      if (failure) throw failure
      if (!options.follow && pendingSources === 0) return
      if (options.follow && pendingSources === 0 && !consoleTimer) return
      await new Promise<void>((resolve) => {
        wake = resolve
        if (options.follow) setTimeout(resolve, CONSOLE_POLL_MS)
      })
      wake = undefined
    }
  } finally {
    if (consoleTimer) clearInterval(consoleTimer)
    call?.cancel()
  }
}
