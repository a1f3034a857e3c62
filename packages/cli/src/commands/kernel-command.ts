import { cacheDir, fetchNamedKernel, listCachedKernels, parseKernelName, pruneKernels } from '@vmctl/core'
import { HELP_OPTION, helpLines } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { megabytes, printTable } from '../print-table.js'
import { UsageError } from '../usage-error.js'

const OPTIONS = {
  json: { type: 'boolean' as const, help: 'ls: print JSON' },
  ...HELP_OPTION,
}

export const KERNEL_HELP = `Usage: vmctl kernel fetch NAME...
       vmctl kernel ls [--json]
       vmctl kernel prune [RELEASE|NAME...]

Guest kernels in ${cacheDir()}/kernels. A NAME is debian:SUITE[-backports][/FLAVOUR][@VERSION]:
  debian:bookworm            Debian 12's generic kernel (6.1; the default)
  debian:trixie              Debian 13's (6.12)       debian:bullseye   Debian 11's (5.10)
  debian:bookworm-backports  the newer kernel bookworm-backports carries (6.12)
  debian:bookworm/rt         a flavour: rt (PREEMPT_RT) or cloud (no 9p: image mode or hostRoot false)
  debian:bookworm@6.1.0-57   an exact ABI (linux-image-6.1.0-57-amd64) or package version
Use one with --kernel/-k, kernel = "debian:trixie" in vmctl.toml, VM.up({ kernel }) or
VMCTL_KERNEL. The first use fetches it from Debian's archive (HTTPS, checked against the suite's
Release checksums; 70-110 MB, unpacked in Node) and later runs use the cache.

  fetch  looks each NAME up in the archive now and fetches its current kernel (a newer one
         replaces what the name pointed at; the older stays until pruned)
  ls     the cached kernels, their size and the names that point at them
  prune  removes the kernels given, or with none given every kernel that neither a name nor
         the default points at, and the module trees made for kernels given by path (but
         not one a running VM loads its modules from)

Options:
${helpLines(OPTIONS)}`

export async function kernelCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, OPTIONS, 'kernel')
  if (values.help) {
    console.log(KERNEL_HELP)
    return 0
  }
  const [action, ...rest] = positionals
  const cache = cacheDir()
  if (action === 'fetch') {
    if (rest.length === 0) throw new UsageError('vmctl kernel fetch: name a kernel, e.g. debian:trixie')
    const names = rest.map((n) => parseKernelName(n))
    for (const name of names) {
      const kernel = await fetchNamedKernel(cache, name.text, process.env, undefined, { refresh: true })
      console.log(
        `${name.text}  ${kernel.release}  ${kernel.dir}${kernel.fetched ? '' : ' (already cached)'}`,
      )
    }
    return 0
  }
  if (action === 'ls') {
    if (rest.length > 0) throw new UsageError(`vmctl kernel ls: unexpected ${JSON.stringify(rest[0])}`)
    const kernels = listCachedKernels(cache)
    if (values.json) {
      console.log(JSON.stringify(kernels, null, 2))
      return 0
    }
    const rows = [['RELEASE', 'SIZE', 'NAMES', 'PACKAGE']]
    for (const k of kernels)
      rows.push([
        k.release,
        megabytes(k.bytes),
        [...(k.isDefault ? ['default'] : []), ...k.names].join(', ') || '-',
        k.package ?? '-',
      ])
    printTable(rows)
    console.log(`${kernels.length} kernel(s), ${megabytes(kernels.reduce((n, k) => n + k.bytes, 0))} on disk`)
    return 0
  }
  if (action === 'prune') {
    const removed = await pruneKernels(cache, rest)
    for (const k of removed) console.log(`removed ${k.release} (${megabytes(k.bytes)})`)
    console.log(
      `${removed.length} kernel(s) removed, ${megabytes(removed.reduce((n, k) => n + k.bytes, 0))} freed`,
    )
    return 0
  }
  throw new UsageError(
    `vmctl kernel: ${action ? `unknown action ${JSON.stringify(action)}` : 'no action'}; use fetch, ls or prune (see vmctl kernel --help)`,
  )
}
