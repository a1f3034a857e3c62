import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { VM } from '../index.js'

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
})
