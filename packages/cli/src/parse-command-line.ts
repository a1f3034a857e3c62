import { parseArgs } from 'node:util'
import { closestName } from '@vmctl/core'
import type { OptionSpec } from './cli-options.js'
import { UsageError } from './usage-error.js'

export interface ParsedCommandLine {
  values: Record<string, string | boolean | string[] | undefined>
  positionals: string[]
  /** Everything after the first `--`: the command to run in the guest. */
  command: string[]
}

export function parseCommandLine(
  args: string[],
  options: Record<string, OptionSpec>,
  command: string,
): ParsedCommandLine {
  const separator = args.indexOf('--')
  const own = separator >= 0 ? args.slice(0, separator) : args
  const guestCommand = separator >= 0 ? args.slice(separator + 1) : []
  try {
    const parsed = parseArgs({
      args: own,
      options: Object.fromEntries(
        Object.entries(options).map(([name, spec]) => [
          name,
          {
            type: spec.type,
            ...(spec.multiple ? { multiple: true } : {}),
            ...(spec.short ? { short: spec.short } : {}),
          },
        ]),
      ),
      allowPositionals: true,
      strict: true,
    })
    return {
      values: parsed.values as ParsedCommandLine['values'],
      positionals: parsed.positionals,
      command: guestCommand,
    }
  } catch (error) {
    const message = (error as Error).message.replace(/\. To specify a positional argument.*$/s, '')
    const unknown = /^Unknown option '--?([^']+)'/.exec(message)?.[1]
    const meant = unknown ? closestName(unknown, Object.keys(options)) : undefined
    const hint = meant ? ` (did you mean --${meant}?)` : ''
    throw new UsageError(`vmctl ${command}: ${message}${hint} (see vmctl ${command} --help)`)
  }
}

/** One argument is a shell script (`vmctl run -- 'ls | wc -l'`); several are argv. */
export function guestCommand(words: string[]): string | string[] {
  return words.length === 1 ? words[0]! : words
}
