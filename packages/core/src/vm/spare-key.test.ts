import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, test } from 'vitest'
import { sampleLaunchSpec, writeSampleCache } from '../test-support/sample-launch-spec.js'
import { definitionKey } from './spare-vm.js'

const cache = mkdtempSync(join(tmpdir(), 'spare-key-'))
afterAll(() => rmSync(cache, { recursive: true, force: true }))

// What a spare must share with the VM.up() that takes it. A lone spare waits for other processes,
// which may come after a kernel was rebuilt at the same path or under other settings.
test("a spare's key: the definition, its files' contents and its supervisor's settings, not the VM's identity", () => {
  writeSampleCache(cache)
  const spec = sampleLaunchSpec(cache)
  const key = definitionKey(spec)
  const identity = {
    name: 'b',
    createdAt: '2026-02-02T00:00:00.000Z',
    creatorPid: 9,
    spare: true,
    spareIdleMs: 5,
  }
  expect(definitionKey({ ...spec, ...identity })).toBe(key)

  writeFileSync(join(cache, 'kernels/6.1.0/vmlinux'), 'kernel, rebuilt at the same path')
  const rebuilt = definitionKey(spec)
  expect(rebuilt).not.toBe(key)

  process.env.VMCTL_SPARE_IDLE_S = '5' // the spare's own switches are not settings of the VM
  expect(definitionKey(spec)).toBe(rebuilt)
  process.env.VMCTL_TEST_SETTING = 'x' // a supervisor reads DEBUG and VMCTL_*
  try {
    expect(definitionKey(spec)).not.toBe(rebuilt)
  } finally {
    delete process.env.VMCTL_TEST_SETTING
    delete process.env.VMCTL_SPARE_IDLE_S
  }
})
