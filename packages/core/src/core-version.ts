import { readFileSync } from 'node:fs'

let version: string | undefined

/**
 * This @vmctl/core's version, from its package.json (read once). It names what cache formats and
 * the agent this core makes (ci-cache-key.ts), and the CLI shows it when it differs from its own.
 */
export function coreVersion(): string {
  version ??= String(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version)
  return version
}
