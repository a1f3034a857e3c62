import { readFileSync } from 'node:fs'

/**
 * The first line of a text: of a message that goes on with details (a TOML error's excerpt, a
 * tool's output), for a report that has one line for it. A text without a newline is returned whole.
 */
export function firstLine(text: string): string {
  const newline = text.indexOf('\n')
  return newline < 0 ? text : text.slice(0, newline)
}

/** The first line of an error's message (of `String(error)` for what is not an Error). */
export function firstLineOf(error: unknown): string {
  return firstLine(error instanceof Error ? error.message : String(error))
}

/** The first line of a file; undefined when the file cannot be read or the line is empty. */
export function readFirstLine(path: string): string | undefined {
  try {
    return firstLine(readFileSync(path, 'utf8')) || undefined
  } catch {
    return undefined
  }
}
