import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { VM } from '../index.js'
import { runtimeDir } from '../paths.js'

// The templates these VMs restore from were warmed up before they were saved (agent-warm-up.ts);
// its file round trip must leave nothing behind, whether or not the VM has a root to mount.
describe('agent warm-up before a template is saved (vm)', () => {
  let hostRoot: VM
  let minimalRoot: VM
  beforeAll(async () => {
    ;[hostRoot, minimalRoot] = await Promise.all([VM.up(), VM.up({ hostRoot: false })])
  })
  afterAll(async () => {
    await Promise.all([hostRoot?.destroy(), minimalRoot?.destroy()])
  })

  test('restored VMs answer their first command and see no trace of the warm-up', async () => {
    for (const vm of [hostRoot, minimalRoot]) {
      expect(vm.template).not.toBeNull()
      const first = await vm.exec('echo first; ls -A /run/vmctl 2>&1; true')
      expect(first.exitCode).toBe(0)
      expect(first.stdout.split('\n')[0]).toBe('first')
      expect(first.stdout).not.toContain('warm-up')
    }
  })

  test("a restored VM rehearses its first command while its root mounts, out of the test's sight", async () => {
    // first-command-rehearsal.ts: the warm-up's program, kept under the root's mount point, run
    // once through the agent as soon as it answers. Which comes first on a busy host, the agent or
    // the root, is the host's: the supervisor says which it saw, and the rehearsal, when it ran,
    // started its program (0) or, the root mounted meanwhile, found it hidden (127). A test's first
    // command sees nothing of it either way (the test above).
    const debug = process.env.DEBUG
    process.env.DEBUG = 'vmctl:supervisor'
    let vm: VM | undefined
    try {
      vm = await VM.up()
    } finally {
      if (debug === undefined) delete process.env.DEBUG
      else process.env.DEBUG = debug
    }
    try {
      expect(vm.template?.made).toBe(false)
      expect((await vm.exec(['ls', '/run/vmctl/warm-up-program'], { reject: false })).exitCode).not.toBe(0)
      const log = readFileSync(join(runtimeDir(), 'vms', vm.name, 'supervisor.log'), 'utf8')
      expect(log).toMatch(
        /first command rehearsed in \d+ ms \(exit (0|127)\)|first command not rehearsed: the root was mounted before the agent answered/,
      )
      console.log(/first command (not )?rehearsed.*/.exec(log)?.[0])
    } finally {
      await vm.destroy()
    }
  })
})
