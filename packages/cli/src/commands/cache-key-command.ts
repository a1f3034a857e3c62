import { ciCacheKey } from '@vmctl/core'
import { HELP_OPTION, helpLines } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { UsageError } from '../usage-error.js'

export const CACHE_KEY_HELP = `Usage: vmctl cache-key

Prints a key for caching vmctl's cache directory (~/.cache/vmctl) on CI: vmctl's, Node's and
QEMU's versions and the CPU model, the things outside your repository that decide what the cache
can hold. Use it as the cache key's prefix and as its restore key (see docs/ci.md).

Options:
${helpLines({ ...HELP_OPTION })}`

export async function cacheKeyCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, { ...HELP_OPTION }, 'cache-key')
  if (values.help) {
    console.log(CACHE_KEY_HELP)
    return 0
  }
  if (positionals.length > 0)
    throw new UsageError(`vmctl cache-key: unexpected ${JSON.stringify(positionals[0])}`)
  console.log(ciCacheKey())
  return 0
}
