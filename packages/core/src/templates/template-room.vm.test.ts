import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { HostDiskFullError, VM } from '../index.js'
import { coldBootsTimeout } from '../test-support/cold-boots.js'
import { linkedCache } from '../test-support/linked-cache.js'
import { canMount, fillUp, mountTmpfs, unmountAll } from '../test-support/small-filesystems.js'
import { pollUntil } from '../util/timing.js'

/**
 * A full disk under vmctl's runtime directory or its cache: what the user meets is an error or a
 * warning that names the directory and the fix, the VM boots cold where it can, and nothing is
 * left behind. Each filesystem here is a small tmpfs mounted for the file, so this needs root
 * (CI runs as root; elsewhere the file is skipped, and says so).
 */
let work: string
let cache: string
const saved = { cache: process.env.VMCTL_CACHE_DIR, runtime: process.env.VMCTL_RUNTIME_DIR }

beforeAll(() => {
  if (!canMount) return
  work = mkdtempSync(join(tmpdir(), 'vmctl-full-disk-'))
  cache = linkedCache('vmctl-template-room-')
  process.env.VMCTL_CACHE_DIR = cache
})

afterAll(() => {
  unmountAll()
  for (const [name, value] of [
    ['VMCTL_CACHE_DIR', saved.cache],
    ['VMCTL_RUNTIME_DIR', saved.runtime],
  ] as const) {
    if (value === undefined) delete process.env[name]
    else process.env[name] = value
  }
  for (const dir of [work, cache]) if (dir) rmSync(dir, { recursive: true, force: true })
})

/** The cache's templates directory: finished templates and the staging of one being made. */
function templateEntries(): string[] {
  return readdirSync(join(cache, 'templates'))
}

describe.skipIf(!canMount)('a full host filesystem (vm; root, to mount small filesystems)', () => {
  test('VM.up() on a full runtime directory fails at once, naming it and the fix, and leaves nothing', async () => {
    const runtime = join(work, 'runtime')
    mountTmpfs(runtime, 1)
    process.env.VMCTL_RUNTIME_DIR = runtime
    try {
      mkdirSync(join(runtime, 'vms'), { mode: 0o700 })
      fillUp(join(runtime, 'filler'))
      const started = performance.now()
      const error = await VM.up().catch((e: unknown) => e)
      expect(performance.now() - started).toBeLessThan(10_000)
      expect(error).toBeInstanceOf(HostDiskFullError)
      expect((error as HostDiskFullError).code).toBe('HOST_DISK_FULL')
      expect((error as Error).message).toContain(`no space left on the filesystem of ${runtime}`)
      expect((error as Error).message).toMatch(/Fix: free space there .*VMCTL_RUNTIME_DIR/)
      expect(readdirSync(join(runtime, 'vms'))).toEqual([])
    } finally {
      process.env.VMCTL_RUNTIME_DIR = saved.runtime
      if (saved.runtime === undefined) delete process.env.VMCTL_RUNTIME_DIR
    }
  })

  test(
    'too little room for a template: the VM boots cold and says why',
    async () => {
      mountTmpfs(join(cache, 'templates'), 64)
      await using vm = await VM.up()
      expect(vm.template).toBeUndefined()
      expect(vm.warnings.join('\n')).toMatch(
        /no VM template was made: the filesystem of \S+ has \d+ MiB free, and a template of this VM needs up to 512 MiB there.*Fix: free space there, or set VMCTL_CACHE_DIR/,
      )
      expect((await vm.exec('echo up')).stdout).toBe('up\n')
      expect(templateEntries()).toEqual([])
    },
    coldBootsTimeout(1),
  )

  test(
    'the filesystem fills while a template is made: the VM boots cold and says why, and no template is kept',
    async () => {
      // Room enough to start making one (template-room.ts' floor is 512 MiB), then another writer takes
      // the rest while the template's RAM file is being written: QEMU's next page there is a SIGBUS.
      execFileSync('mount', ['-o', 'remount,size=600m', join(cache, 'templates')])
      const booting = VM.up()
      let settled = false
      booting.then(
        () => (settled = true),
        () => (settled = true),
      )
      let filledMiB = 0
      const fill = pollUntil(
        () => {
          const staging = templateEntries().find((entry) => entry.endsWith('.staging'))
          if (!staging || !existsSync(join(cache, 'templates', staging, 'ram'))) return false
          filledMiB = fillUp(join(cache, 'templates', 'filler'))
          return true
        },
        { timeoutMs: 120_000, everyMs: 10, stopIf: () => settled },
      )
      try {
        await using vm = await booting
        expect(await fill).toBe(true)
        expect(filledMiB).toBeGreaterThan(0)
        expect(vm.template).toBeUndefined()
        expect(vm.warnings.join('\n')).toMatch(
          /no VM template was made: the filesystem of \S+ filled up while the template's RAM was written there \(its QEMU was killed by SIGBUS.*Fix: free space there/,
        )
        expect((await vm.exec('echo up')).stdout).toBe('up\n')
        expect(templateEntries()).toEqual(['filler'])
      } finally {
        rmSync(join(cache, 'templates', 'filler'), { force: true })
      }
    },
    coldBootsTimeout(2),
  )
})
