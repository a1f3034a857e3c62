import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import { evictTemplates, listTemplates, templateCacheMiB, templatesDir } from './template-store.js'

// Template directories made by hand (the eviction is bookkeeping over files); the real templates
// are made and restored by templates.vm.test.ts.
const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

const MiB = 1024 * 1024
const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString()

function cacheWith(templates: Record<string, { mib: number; lastUsed: string }>): string {
  const cache = mkdtempSync(join(tmpdir(), 'templates-'))
  dirs.push(cache)
  for (const [key, { mib, lastUsed }] of Object.entries(templates)) {
    const dir = join(templatesDir(cache), key)
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'ram'), Buffer.alloc(mib * MiB, 1)) // written, so its blocks count
    writeFileSync(join(dir, 'meta.json'), JSON.stringify({ key, createdAt: lastUsed, summary: key }))
    writeFileSync(join(dir, 'last-used'), lastUsed)
  }
  return cache
}

describe('template cache budget', () => {
  test('the least recently used go first, until the cache fits; the new one and recent ones stay', () => {
    const cache = cacheWith({
      oldest: { mib: 3, lastUsed: minutesAgo(300) },
      older: { mib: 3, lastUsed: minutesAgo(200) },
      recent: { mib: 3, lastUsed: minutesAgo(2) },
      fresh: { mib: 3, lastUsed: minutesAgo(0) },
      'fresh.123.staging': { mib: 3, lastUsed: minutesAgo(500) },
    })
    const removed = evictTemplates(cache, 8, 'fresh')
    expect(removed.map((t) => t.key)).toEqual(['oldest', 'older'])
    expect(
      listTemplates(cache)
        .map((t) => t.key)
        .sort(),
    ).toEqual(['fresh', 'fresh.123.staging', 'recent'])
  })

  test('within budget, or with no cap, nothing is removed', () => {
    const cache = cacheWith({
      a: { mib: 2, lastUsed: minutesAgo(100) },
      b: { mib: 2, lastUsed: minutesAgo(90) },
    })
    expect(evictTemplates(cache, 5, 'b')).toEqual([])
    expect(evictTemplates(cache, 0, 'b')).toEqual([])
    expect(listTemplates(cache)).toHaveLength(2)
  })

  test('VMCTL_TEMPLATE_CACHE_MB: the default, 0 for no cap, and an error naming the variable', () => {
    expect(templateCacheMiB({})).toBe(5120)
    expect(templateCacheMiB({ VMCTL_TEMPLATE_CACHE_MB: '0' })).toBe(0)
    expect(templateCacheMiB({ VMCTL_TEMPLATE_CACHE_MB: '2048' })).toBe(2048)
    expect(() => templateCacheMiB({ VMCTL_TEMPLATE_CACHE_MB: 'lots' })).toThrow(/VMCTL_TEMPLATE_CACHE_MB/)
  })
})
