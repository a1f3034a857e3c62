import { createRequire } from 'node:module'
import { coreVersion } from '@vmctl/core'

const require = createRequire(import.meta.url)

/**
 * `vmctl --version`: this CLI's version from its package.json, and @vmctl/core's when it differs
 * (a project may have installed another core next to the CLI; that one boots the VMs).
 */
export function versionText(): string {
  const cli = (require('../package.json') as { version: string }).version
  const core = coreVersion()
  return core === cli ? `vmctl ${cli}` : `vmctl ${cli} (@vmctl/core ${core})`
}
