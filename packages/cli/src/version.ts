import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

const versionIn = (packageJson: string) =>
  String(JSON.parse(readFileSync(require.resolve(packageJson), 'utf8')).version)

/**
 * `vmctl --version`: this CLI's version from its package.json, and @vmctl/core's when it differs
 * (a project may have installed another core next to the CLI; that one boots the VMs). Node's
 * modules only: main.ts answers --version before it loads the CLI's bundle (~70 ms of CPU).
 */
export function versionText(): string {
  const cli = versionIn('../package.json')
  const core = versionIn('@vmctl/core/package.json')
  return core === cli ? `vmctl ${cli}` : `vmctl ${cli} (@vmctl/core ${core})`
}
