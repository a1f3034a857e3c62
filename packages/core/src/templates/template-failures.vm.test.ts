import { randomBytes } from 'node:crypto'
import { readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { listTemplates, VM } from '../index.js'
import { coldBootsTimeout } from '../test-support/cold-boots.js'
import { linkedCache } from '../test-support/linked-cache.js'

/**
 * A template counts only once a VM made from it became ready. Run in a cache of its own (the
 * shared kernel, runtime disks and initramfs linked in, so nothing is rebuilt) whose templates
 * directory this file alone writes.
 */
let cache: string
const saved = process.env.VMCTL_CACHE_DIR

beforeAll(() => {
  cache = linkedCache('vmctl-template-failures-')
  process.env.VMCTL_CACHE_DIR = cache
})

afterAll(() => {
  if (saved === undefined) delete process.env.VMCTL_CACHE_DIR
  else process.env.VMCTL_CACHE_DIR = saved
  rmSync(cache, { recursive: true, force: true })
})

/** Everything in the cache's templates directory, staging directories included. */
function templateEntries(): string[] {
  try {
    return readdirSync(join(cache, 'templates'))
  } catch {
    return []
  }
}

/** Files of builds that never finished, anywhere in the cache. */
function halfMade(): string[] {
  return ['runtime', 'initramfs', 'templates'].flatMap((dir) => {
    try {
      return readdirSync(join(cache, dir)).filter((f) => /\.(partial|staging)/.test(f))
    } catch {
      return []
    }
  })
}

describe('templates: a boot that never became ready leaves none (vm)', () => {
  test('a root that can never mount (kernel mode, a 9p tag that does not exist)', async () => {
    expect(templateEntries()).toEqual([])
    // The template is saved before the root is mounted: this boot gets that far, then fails.
    const error = await VM.up({ kernelArgs: ['vmctl_root=9p:no-such-tag'] }).catch((e: unknown) => e)
    expect(String(error)).toMatch(/could not mount its root/)
    expect(templateEntries()).toEqual([])
    expect(halfMade()).toEqual([])
  })

  test('an image of random bytes', async () => {
    const image = join(cache, 'random.img')
    writeFileSync(image, randomBytes(1024 * 1024))
    const error = await VM.up({ image }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(Error)
    expect(templateEntries()).toEqual([])
    expect(halfMade()).toEqual([])
  })

  test('a VM that became ready publishes its template, and the next VM uses it', async () => {
    const definition = {
      hostRoot: false as const,
      kernelArgs: [`vmctl_test_case=${randomBytes(4).toString('hex')}`],
    }
    // Those of an earlier attempt (a retry) stay: this attempt's definition is its own.
    const earlier = new Set(listTemplates(cache).map((t) => t.key))
    const first = await VM.up(definition)
    try {
      expect(first.template?.made).toBe(true)
      expect(
        listTemplates(cache)
          .filter((t) => !earlier.has(t.key))
          .map((t) => [t.key, t.valid]),
      ).toEqual([[first.template!.key, true]])
      // Its QEMU mapped the template's RAM from the staging directory: a snapshot restore maps it
      // again, from where it was published.
      await first.writeFile('/tmp/state', 'before')
      await first.snapshot('s')
      await first.writeFile('/tmp/state', 'after')
      await first.restore('s')
      expect(await first.readFile('/tmp/state')).toBe('before')
    } finally {
      await first.destroy()
    }
    const second = await VM.up(definition)
    try {
      expect(second.template).toEqual({ key: first.template!.key, made: false })
    } finally {
      await second.destroy()
    }
    expect(halfMade()).toEqual([])
  })

  test(
    'a boot that probes KVM leaves no template under an accelerator it does not use',
    async () => {
      rmSync(join(cache, 'kvm-verdict.json'), { force: true })
      const marker = `vmctl_test_case=${randomBytes(4).toString('hex')}`
      const vm = await VM.up({ kernelArgs: [marker] })
      const accel = vm.accel
      await vm.destroy()
      const mine = listTemplates(cache).filter((t) => t.summary.includes(marker))
      // Working KVM: the probe's own QEMU becomes the VM, no template. Broken KVM (this host's
      // kind): TCG after the probe, and a template filed as TCG's, not under KVM's key.
      if (accel === 'kvm') expect(mine).toEqual([])
      else expect(mine.map((t) => t.summary.match(/, (kvm|tcg), /)?.[1])).toEqual(['tcg'])
      expect(halfMade()).toEqual([])
    },
    coldBootsTimeout(2),
  )
})
