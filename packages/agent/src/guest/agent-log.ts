import { EventEmitter } from 'node:events'

export interface AgentLogLine {
  timestampUs: number
  message: string
}

const KEEP_LINES = 5000

/** The agent's own log: to stderr (the serial console) and kept in memory for the Logs call. */
class AgentLog extends EventEmitter<{ line: [AgentLogLine] }> {
  private readonly lines: AgentLogLine[] = []

  write(message: string): void {
    const line = { timestampUs: Date.now() * 1000, message }
    this.lines.push(line)
    if (this.lines.length > KEEP_LINES) this.lines.splice(0, this.lines.length - KEEP_LINES)
    process.stderr.write(`vmctl-agent: ${message}\n`)
    this.emit('line', line)
  }

  history(): AgentLogLine[] {
    return [...this.lines]
  }
}

export const agentLog = new AgentLog()
