import { closeSync, openSync, readSync, statSync } from 'node:fs'

/**
 * Console lines that explain a failed boot, most telling first. A cause can scroll far out of the
 * console tail an error shows: a driver that did not load prints one line early on, and the boot
 * then fails much later (the agent's restart loop, a root that never mounts), burying it under
 * hundreds of lines.
 */
const KNOWN_CAUSES: Array<{ pattern: RegExp; what: string }> = [
  { pattern: /vmctl-init: fatal: .*/, what: "vmctl's init gave up" },
  { pattern: /Kernel panic - not syncing: .*/, what: 'the kernel panicked' },
  { pattern: /VFS: Unable to mount root fs.*/, what: 'the kernel could not mount a root' },
  { pattern: /vmctl-init: root: .*/, what: 'the root could not be mounted' },
  { pattern: /vmctl-init: insmod .* failed.*/, what: 'a driver did not load' },
  { pattern: /insmod: can't insert .*/, what: 'a driver did not load' },
  { pattern: /(?:modprobe: )?(?:FATAL: )?[Mm]odule \S+ not found.*/, what: 'a module is missing' },
  {
    pattern:
      /\S+: (?:Unknown symbol|disagrees about version of symbol|module verification failed|Invalid module format).*/,
    what: 'a module does not fit this kernel',
  },
  { pattern: /.*unknown filesystem type.*/, what: 'a filesystem driver is missing' },
  { pattern: /(?:BUG: |Oops: |general protection fault).*/, what: 'the kernel crashed' },
  { pattern: /Failed to execute \S+.*|No working init found.*/, what: 'the init could not run' },
]

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching terminal escapes is the point
const ANSI_ESCAPE = /\x1b\[[0-9;]*[A-Za-z]/g

/** Read at most this much of the console's end: a boot's console is far smaller. */
const MAX_SCAN_BYTES = 4 * 1024 * 1024

export interface BootFailureLine {
  /** 1-based line of console.log. */
  line: number
  text: string
  what: string
}

/** The console lines that explain a failed boot, first by kind, at most `limit`. */
export function bootFailureLines(consoleText: string, limit = 3): BootFailureLine[] {
  const lines = consoleText.replace(/\r/g, '').replace(ANSI_ESCAPE, '').split('\n')
  const found: BootFailureLine[] = []
  for (const { pattern, what } of KNOWN_CAUSES) {
    for (let i = 0; i < lines.length && found.length < limit; i++) {
      const match = pattern.exec(lines[i]!)
      if (!match) continue
      const text = match[0].trim()
      if (!found.some((f) => f.text === text)) found.push({ line: i + 1, text, what })
    }
  }
  return found
}

/**
 * A boot failure's message with the console lines that explain it (from the whole console.log),
 * those the message and the console tail it is shown with do not already hold.
 */
export function withBootFailureCause(message: string, consoleLogPath: string, consoleTail: string): string {
  const lines = bootFailureLines(readEnd(consoleLogPath)).filter(
    (l) => !message.includes(l.text) && !consoleTail.includes(l.text),
  )
  if (lines.length === 0) return message
  return `${message}\nThe console's explanation (console.log, above its last lines):\n${lines.map((l) => `  line ${l.line}: ${l.text}   (${l.what})`).join('\n')}`
}

function readEnd(path: string): string {
  try {
    const size = statSync(path).size
    const length = Math.min(size, MAX_SCAN_BYTES)
    const fd = openSync(path, 'r')
    try {
      const buffer = Buffer.alloc(length)
      readSync(fd, buffer, 0, length, size - length)
      return buffer.toString('utf8')
    } finally {
      closeSync(fd)
    }
  } catch {
    return ''
  }
}
