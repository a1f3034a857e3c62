import { cacheDir, listTemplates, removeTemplate, templateCacheMiB } from '@vmctl/core'
import { HELP_OPTION, helpLines } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { megabytes, printTable } from '../print-table.js'
import { UsageError } from '../usage-error.js'

const OPTIONS = {
  json: { type: 'boolean' as const, help: 'ls: print JSON' },
  all: { type: 'boolean' as const, help: 'prune: remove every template' },
  'unused-for': {
    type: 'string' as const,
    value: 'DAYS',
    help: 'prune: remove templates not used for DAYS days (default 7)',
  },
  ...HELP_OPTION,
}

export const TEMPLATE_HELP = `Usage: vmctl template ls [--json]
       vmctl template prune [--all | --unused-for DAYS]

VM templates: the first boot of each VM definition saves a snapshot that later boots of the same
definition restore from (in about a second instead of a cold boot). They live in
${cacheDir()}/templates. ls shows each with its size on disk; prune removes unused ones
(also broken and half-made ones). VMs running from a template are not affected by its removal.
Making a template evicts the least recently used ones over the cache's budget: 5 GiB, or
VMCTL_TEMPLATE_CACHE_MB (0: no cap).

Options:
${helpLines(OPTIONS)}`

export async function templateCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, OPTIONS, 'template')
  if (values.help) {
    console.log(TEMPLATE_HELP)
    return 0
  }
  const [action, ...extra] = positionals
  if (extra.length > 0) throw new UsageError(`vmctl template: unexpected ${JSON.stringify(extra[0])}`)
  const cache = cacheDir()
  const templates = listTemplates(cache)
  if (action === 'ls') {
    const budget = templateCacheMiB()
    if (values.json) {
      console.log(JSON.stringify(templates, null, 2))
      return 0
    }
    const rows = [['KEY', 'SIZE', 'CREATED', 'LAST USED', 'DEFINITION']]
    for (const t of templates) {
      rows.push([
        t.key,
        megabytes(t.bytes),
        t.createdAt.slice(0, 16).replace('T', ' ') || '-',
        t.lastUsedAt.slice(0, 16).replace('T', ' ') || '-',
        t.valid ? t.summary : `${t.summary} (broken: rebuilt on next use)`,
      ])
    }
    printTable(rows)
    console.log(
      `${templates.length} template(s), ${megabytes(templates.reduce((n, t) => n + t.bytes, 0))} on disk` +
        (budget === 0 ? ' (no cap)' : ` of a ${megabytes(budget * 1024 * 1024)} budget`),
    )
    return 0
  }
  if (action === 'prune') {
    const days = values['unused-for'] === undefined ? 7 : Number(values['unused-for'])
    if (!Number.isFinite(days) || days < 0)
      throw new UsageError(
        `--unused-for must be a number of days, not ${JSON.stringify(values['unused-for'])}`,
      )
    const cutoff = Date.now() - days * 86_400_000
    let freed = 0
    let removed = 0
    for (const t of templates) {
      const lastUsed = Date.parse(t.lastUsedAt || t.createdAt)
      if (values.all || !t.valid || !(lastUsed > cutoff)) {
        removeTemplate(cache, t.key)
        freed += t.bytes
        removed++
        console.log(`removed ${t.key} (${megabytes(t.bytes)})`)
      }
    }
    console.log(`${removed} template(s) removed, ${megabytes(freed)} freed`)
    return 0
  }
  throw new UsageError(
    `vmctl template: expected ls or prune${action ? `, not ${JSON.stringify(action)}` : ''}`,
  )
}
