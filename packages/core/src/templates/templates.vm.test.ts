import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, describe, expect, test } from 'vitest'
import { cacheDir, listTemplates, removeTemplate, VM } from '../index.js'
import { coldBootsTimeout } from '../test-support/cold-boots.js'
import { qemuPidsOf } from '../test-support/vm-processes.js'
import { offeredEarlySupervisor } from '../vm/early-supervisor.js'
import { templatesDir } from './template-store.js'

const run = promisify(execFile)
const fixture = fileURLToPath(new URL('../../test/fixtures/template-user.mjs', import.meta.url))

const made = new Set<string>()

/** A definition no other test uses, so this test makes (and owns, and removes) its template. */
function uniqueDefinition(): { kernelArgs: string[] } {
  return { kernelArgs: [`vmctl_test_case=${randomBytes(4).toString('hex')}`] }
}

// Each template takes ~190 MB: the ones made here go when the file is done.
afterAll(() => {
  for (const key of made) removeTemplate(cacheDir(), key)
})

async function bootInChild(options: object, env: NodeJS.ProcessEnv = {}) {
  const { stdout } = await run(process.execPath, [fixture, JSON.stringify(options)], {
    env: { ...process.env, ...env },
  })
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as {
    name: string
    template: { key: string; made: boolean } | null
  }
}

/**
 * The guest's wall clock in ms (perl from the host root: busybox date has whole seconds only), and
 * the host's clock before and after asking: the guest read it somewhere in between.
 */
async function guestClockMs(vm: VM): Promise<{ guest: number; before: number; after: number }> {
  const before = Date.now()
  const { stdout } = await vm.exec(['perl', '-MTime::HiRes=time', '-e', 'printf "%.3f", time'])
  return { guest: Number(stdout) * 1000, before, after: Date.now() }
}

describe('templates (vm)', () => {
  test('clones of one template are not twins: own RNG, clock, hostname, memory; eight at once', async () => {
    const definition = uniqueDefinition()
    const first = await VM.up(definition)
    expect(first.template?.made).toBe(true)
    made.add(first.template!.key)
    await first.destroy()

    const clones = await Promise.all(Array.from({ length: 8 }, () => VM.up(definition)))
    try {
      for (const clone of clones) expect(clone.template).toEqual({ key: first.template!.key, made: false })
      const [a, b] = clones as [VM, VM]
      const [randomA, randomB] = await Promise.all(
        [a, b].map((vm) => vm.exec('head -c 32 /dev/urandom | od -An -tx1').then((r) => r.stdout)),
      )
      expect(randomA).not.toBe(randomB)
      const bootIds = await Promise.all(
        [a, b].map((vm) => vm.exec('cat /proc/sys/kernel/random/boot_id').then((r) => r.stdout)),
      )
      expect(bootIds[0]).not.toBe(bootIds[1])
      // Right after a restore: the first command of a fresh clone.
      const fresh = await VM.up(definition)
      clones.push(fresh)
      const clock = await guestClockMs(fresh)
      expect(clock.guest).toBeGreaterThan(clock.before - 1000)
      expect(clock.guest).toBeLessThan(clock.after + 1000)
      const hostnames = await Promise.all(
        clones.map((vm) => vm.exec('hostname').then((r) => r.stdout.trim())),
      )
      expect(hostnames).toEqual(clones.map((vm) => vm.name))
      // The clone's /etc files, written into the overlay's upper layer before it is mounted
      // (mount-root.c): its own name, the network's DNS, the rest of /etc the host's, as it was.
      const etc = await a.exec(
        'cat /etc/hostname /etc/resolv.conf; grep -c "^127.0.1.1.$(hostname)$" /etc/hosts; stat -c %a:%u:%g /etc; test -s /etc/passwd && echo passwd',
      )
      const hostEtc = await run('stat', ['-c', '%a:%u:%g', '/etc'])
      expect(etc.stdout).toBe(`${a.name}\nnameserver 10.0.2.3\n1\n${hostEtc.stdout}passwd\n`)
      await a.exec('echo only-in-a > /root/mark')
      expect((await b.exec('cat /root/mark', { reject: false })).exitCode).not.toBe(0)
      expect((await a.exec('cat /root/mark')).stdout).toBe('only-in-a\n')
    } finally {
      await Promise.all(clones.map((vm) => vm.destroy()))
    }
    // And the template itself never saw that write: a new clone has no /root/mark. This process
    // booted VMs one after another: their destroy() left a spare supervisor, which this VM.up() takes
    // (unless the suite runs with spares switched off).
    const spares = process.env.VMCTL_SPARE_SUPERVISOR !== '0'
    const spare = offeredEarlySupervisor()
    if (spares) expect(spare?.pid).toBeGreaterThan(0)
    await using later = await VM.up(definition)
    // The spare names itself after the VM it was handed (supervisor-main.ts).
    if (spares) {
      expect(readFileSync(`/proc/${spare?.pid}/cmdline`, 'utf8')).toContain(`vmctl-supervisor ${later.name}`)
      // It took the QEMU the spare started for the next clone when the clones were destroyed
      // (prestarted-qemu.ts): started for the name this VM took, its sockets where the spare put them.
      const qemus = qemuPidsOf(later.name)
      expect(qemus).toHaveLength(1)
      if (process.env.VMCTL_PRESTART_QEMU !== '0')
        expect(readFileSync(`/proc/${qemus[0]}/cmdline`, 'utf8')).toContain('/spare-qemu/')
      expect((await later.exec('hostname')).stdout).toBe(`${later.name}\n`)
    }
    expect((await later.exec('cat /root/mark', { reject: false })).exitCode).not.toBe(0)
  })

  test('two processes asking for a new template at once make it once, keeping the cache within its budget: the least recently used goes', async () => {
    // A stale 2 GiB template (blocks allocated, last used a year ago) and a budget 1.5 GiB above
    // everything else: making the new template (~0.2 GiB) goes over it, and the stale one, the least
    // recently used, is evicted first, which brings the cache back within budget. (Other test files
    // make and remove templates meanwhile, so which others survive is not asserted here; the order
    // of eviction is pinned by template-store.test.ts.) One cold boot shows both: the two processes
    // and the budget meet where a template is made, under its lock.
    const stale = join(templatesDir(cacheDir()), `stale-${randomBytes(4).toString('hex')}`)
    mkdirSync(stale, { recursive: true })
    await run('fallocate', ['-l', '2G', join(stale, 'ram')])
    const yearAgo = new Date(Date.now() - 365 * 86_400_000).toISOString()
    writeFileSync(join(stale, 'meta.json'), JSON.stringify({ createdAt: yearAgo, summary: 'stale' }))
    writeFileSync(join(stale, 'last-used'), yearAgo)
    const others = listTemplates(cacheDir()).filter((t) => t.dir !== stale)
    const budgetMiB = Math.ceil(others.reduce((sum, t) => sum + t.bytes, 0) / 2 ** 20) + 1536
    const budget = { VMCTL_TEMPLATE_CACHE_MB: String(budgetMiB) }
    const definition = uniqueDefinition()
    try {
      const results = await Promise.all([bootInChild(definition, budget), bootInChild(definition, budget)])
      const key = results[0]!.template!.key
      made.add(key)
      expect(results.map((r) => r.template?.key)).toEqual([key, key])
      expect(results.filter((r) => r.template?.made).length).toBe(1)
      expect(existsSync(stale)).toBe(false)
      expect(existsSync(join(templatesDir(cacheDir()), key))).toBe(true)
    } finally {
      rmSync(stale, { recursive: true, force: true })
    }
  })

  // (VMCTL_TEMPLATES=0, a cold boot without a template, is shown by hung-boot.vm.test.ts, whose
  // boots are cold that way.)
  test(
    'a truncated template is rebuilt with a one-line warning',
    async () => {
      const definition = uniqueDefinition()
      const made = await bootInChild(definition)
      truncateSync(join(templatesDir(cacheDir()), made.template!.key, 'state'), 1000)
      await using vm = await VM.up(definition)
      expect(vm.template).toEqual({ key: made.template!.key, made: true })
      expect((await vm.exec('echo ok')).stdout).toBe('ok\n')
      const rebuilt = vm.warnings.filter((warning) => /template/.test(warning))
      expect(rebuilt).toEqual([
        expect.stringMatching(
          /^the VM template \w+ is unusable \(its device state file is corrupt or truncated\); rebuilding it/,
        ),
      ])
    },
    coldBootsTimeout(2),
  )

  test('snapshot and restore in place: same handle, name and ports; state back, clock now', async () => {
    await using vm = await VM.up({ hostRoot: false, ports: [8080] })
    if (vm.template) made.add(vm.template.key)
    const port = vm.forwardedPort(8080)
    await vm.exec('echo provisioned > /root/state')
    await vm.snapshot('provisioned')
    await vm.exec('echo dirty > /root/state; touch /root/extra')
    await new Promise((r) => setTimeout(r, 3000))
    await vm.restore('provisioned')
    expect((await vm.exec('cat /root/state')).stdout).toBe('provisioned\n')
    expect((await vm.exec('ls /root/extra', { reject: false })).exitCode).not.toBe(0)
    expect(vm.forwardedPort(8080)).toBe(port)
    expect((await vm.exec('hostname')).stdout.trim()).toBe(vm.name)
    // The guest's clock is now's, not the snapshot's: read between two host readings (a loaded
    // host can take seconds for the exec itself), to a second (busybox date, no perl here).
    const before = Date.now()
    const guestSeconds = Number((await vm.exec('date +%s')).stdout)
    const after = Date.now()
    expect(guestSeconds).toBeGreaterThanOrEqual(Math.floor(before / 1000) - 1)
    expect(guestSeconds).toBeLessThanOrEqual(Math.ceil(after / 1000) + 1)
    await expect(vm.restore('never-taken')).rejects.toThrow(
      /no snapshot named "never-taken" \(it has provisioned\)/,
    )
  })

  test('kernel mode cannot snapshot over the 9p root, and says why; the VM runs on', async () => {
    await using vm = await VM.up()
    await expect(vm.snapshot('x')).rejects.toThrow(/mounted in it over 9p/)
    expect((await vm.exec('echo still here')).stdout).toBe('still here\n')
  })
})
