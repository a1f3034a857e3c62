import {
  buildImage,
  type CachedImage,
  cacheDir,
  findConfig,
  type ImageBuildOptions,
  listCachedImages,
  loadConfig,
  removeCachedImage,
} from '@vmctl/core'
import { HELP_OPTION, helpLines, type OptionSpec } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { megabytes, printTable } from '../print-table.js'
import { UsageError } from '../usage-error.js'

const OPTIONS: Record<string, OptionSpec> = {
  config: {
    type: 'string',
    short: 'c',
    value: 'FILE',
    help: 'build: the [image] of this vmctl.toml (default ./vmctl.toml)',
  },
  vm: { type: 'string', value: 'NAME', help: 'build: the image of [vm.NAME] of the config file' },
  distribution: {
    type: 'string',
    value: 'SUITE',
    help: 'build: Debian suite instead of a config file (e.g. bookworm)',
  },
  package: { type: 'string', multiple: true, value: 'PKG', help: 'build: package to install (repeatable)' },
  json: { type: 'boolean', help: 'ls: print JSON' },
  all: { type: 'boolean', help: 'prune: remove every image and layer' },
  'unused-for': {
    type: 'string',
    value: 'DAYS',
    help: 'prune: remove entries not used for DAYS days (default 30)',
  },
  ...HELP_OPTION,
}

export const IMAGE_HELP = `Usage: vmctl image build [-c vmctl.toml | --distribution SUITE --package PKG...]
       vmctl image ls [--json]
       vmctl image prune [--all | --unused-for DAYS]

Disk images for image mode (docs/images.md). build makes the Debian image an [image] table
describes (mmdebstrap, minutes the first time; instant when its inputs are unchanged) and prints
its path; VMs build it on first use too. ls shows built images and provisioning layers with their
size on disk; prune removes unused ones (and half-made ones), an image with the layers made on it.
They live in ${cacheDir()}/images and ${cacheDir()}/layers.

Options:
${helpLines(OPTIONS)}`

export async function imageCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, OPTIONS, 'image')
  if (values.help) {
    console.log(IMAGE_HELP)
    return 0
  }
  const [action, ...extra] = positionals
  if (extra.length > 0) throw new UsageError(`vmctl image: unexpected ${JSON.stringify(extra[0])}`)
  const cache = cacheDir()
  if (action === 'build') {
    const built = await buildImage(buildSpec(values), cache)
    if (built.cached) process.stderr.write(`vmctl: image ${built.key} is already built (cached)\n`)
    console.log(built.path)
    return 0
  }
  if (action === 'ls') {
    const entries = listCachedImages(cache)
    if (values.json) {
      console.log(JSON.stringify(entries, null, 2))
      return 0
    }
    const rows = [['KIND', 'KEY', 'SIZE', 'CREATED', 'LAST USED', 'CONTENT']]
    for (const e of entries)
      rows.push([
        e.kind,
        e.key,
        megabytes(e.bytes),
        date(e.createdAt),
        date(e.lastUsedAt),
        e.broken ? `${e.summary} (broken or unfinished: prune removes it)` : e.summary,
      ])
    printTable(rows)
    console.log(
      `${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}, ${megabytes(total(entries))} on disk`,
    )
    return 0
  }
  if (action === 'prune') {
    const days = values['unused-for'] === undefined ? 30 : Number(values['unused-for'])
    if (!Number.isFinite(days) || days < 0)
      throw new UsageError(
        `--unused-for must be a number of days, not ${JSON.stringify(values['unused-for'])}`,
      )
    const cutoff = Date.now() - days * 86_400_000
    const gone = new Set<string>()
    let freed = 0
    for (const entry of listCachedImages(cache)) {
      if (gone.has(entry.path)) continue
      const lastUsed = Date.parse(entry.lastUsedAt || entry.createdAt)
      if (!(values.all || entry.broken || !(lastUsed > cutoff))) continue
      for (const removed of removeCachedImage(cache, entry)) {
        if (gone.has(removed.path)) continue
        gone.add(removed.path)
        freed += removed.bytes
        console.log(`removed ${removed.kind} ${removed.key} (${megabytes(removed.bytes)})`)
      }
    }
    console.log(`${gone.size} removed, ${megabytes(freed)} freed`)
    return 0
  }
  throw new UsageError(
    `vmctl image: expected build, ls or prune${action ? `, not ${JSON.stringify(action)}` : ''}`,
  )
}

function buildSpec(values: Record<string, unknown>): ImageBuildOptions {
  if (values.distribution !== undefined) {
    if (values.config !== undefined)
      throw new UsageError('vmctl image build: give -c or --distribution, not both')
    return {
      distribution: values.distribution as string,
      packages: (values.package as string[] | undefined) ?? [],
    }
  }
  if (values.package !== undefined) throw new UsageError('vmctl image build: --package needs --distribution')
  const file = (values.config as string | undefined) ?? findConfig()
  if (!file)
    throw new UsageError(
      'vmctl image build: no vmctl.toml here; pass -c FILE or --distribution SUITE [--package PKG...]',
    )
  const { image } = loadConfig(file, { name: values.vm as string | undefined }).options
  if (typeof image !== 'object')
    throw new UsageError(
      `vmctl image build: ${file} has no [image] table to build${typeof image === 'string' ? ` (its image is the file ${image})` : ''}`,
    )
  return image
}

function total(entries: CachedImage[]): number {
  return entries.reduce((n, e) => n + e.bytes, 0)
}

function date(iso: string): string {
  return iso.slice(0, 16).replace('T', ' ') || '-'
}
