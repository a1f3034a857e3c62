import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type VM, VmExitedError, VmStoppedError } from '@vmctl/core'
import { afterAll, describe, expect, test } from 'vitest'
import { vmDiagnostics } from './diagnostics.js'
import { toFailWith, toHaveStdout, toSucceed } from './matchers.js'
import { oneLine, skipLine } from './skip-notice.js'
import { bootBudgetMs, keptMessage, loadVmOptions, testVmName, VM_BOOT_BUDGET_MS } from './test-vm.js'

const dir = mkdtempSync(join(tmpdir(), 'vmctl-testing-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const result = (exitCode: number | undefined, stdout = '', stderr = '', signal?: string) => ({
  command: 'cmd',
  exitCode,
  stdout,
  stderr,
  signal,
  timedOut: false,
})

describe('exec result matchers', () => {
  test('pass and fail on exit codes, signals and stdout', () => {
    expect(toSucceed(result(0)).pass).toBe(true)
    expect(toSucceed(result(undefined, '', '', 'SIGKILL')).message()).toContain('was killed by SIGKILL')
    expect(toFailWith(result(3), 3).pass).toBe(true)
    expect(toHaveStdout(result(0, 'hi\n'), 'hi').pass).toBe(true)
    expect(toHaveStdout(result(0, 'hi\nthere\n'), 'hi').pass).toBe(false)
    expect(toHaveStdout(result(0, 'abc'), /b/).pass).toBe(true)
  })

  test('a Promise instead of a result says to await it', () => {
    expect(toSucceed(Promise.resolve()).message()).toContain('await the command first')
  })
})

describe('test VM options', () => {
  test('from a JSON file, with paths relative to it', () => {
    const file = join(dir, 'vm.json')
    writeFileSync(file, JSON.stringify({ ports: [80], kernel: 'k/vmlinuz' }))
    expect(loadVmOptions(file)).toEqual({ ports: [80], kernel: join(dir, 'k/vmlinuz'), hostRoot: undefined })
    expect(loadVmOptions({ cpus: 1 })).toEqual({ cpus: 1 })
    expect(() => loadVmOptions(join(dir, 'missing.json'))).toThrow(/cannot read VM options from/)
  })

  test('names come from the test name and stay valid VM names', () => {
    expect(testVmName('Does a THING: with ünïcode & more words than fit')).toMatch(
      /^does-a-thing-with-n-code-[0-9a-f]{6}$/,
    )
    expect(testVmName('!!!')).toMatch(/^t-[0-9a-f]{6}$/)
  })

  test('the boot budget is VMCTL_BOOT_BUDGET_MS when set, and a bad value says what to set', () => {
    expect(bootBudgetMs({})).toBe(VM_BOOT_BUDGET_MS)
    expect(bootBudgetMs({ VMCTL_BOOT_BUDGET_MS: '' })).toBe(VM_BOOT_BUDGET_MS)
    expect(bootBudgetMs({ VMCTL_BOOT_BUDGET_MS: '90000' })).toBe(90_000)
    for (const bad of ['0', '-5', '1.5', '10s'])
      expect(() => bootBudgetMs({ VMCTL_BOOT_BUDGET_MS: bad })).toThrow(
        `VMCTL_BOOT_BUDGET_MS=${bad} is not a whole number of milliseconds above 0. Fix: set it to one`,
      )
  })

  test('the kept message names the runtime directory when it is not the default', () => {
    expect(keptMessage('x', { VMCTL_RUNTIME_DIR: '/r' })).toContain('VMCTL_RUNTIME_DIR=/r vmctl exec x -- sh')
    expect(keptMessage('x', {})).toContain(': vmctl exec x -- sh')
  })
})

describe('the skip line', () => {
  test('holds a multi-line reason whole: its list, then the fix', () => {
    const reason = [
      'no guest kernel found. Tried:',
      '  - $VMCTL_KERNEL (unset)',
      '  - /root/.cache/vmctl/kernel',
      'Fix: run vmctl setup to download it, or set VMCTL_KERNEL.',
    ].join('\n')
    expect(oneLine(reason)).toBe(
      'no guest kernel found. Tried: $VMCTL_KERNEL (unset); /root/.cache/vmctl/kernel. Fix: run vmctl setup to download it, or set VMCTL_KERNEL.',
    )
    expect(skipLine(reason)).not.toContain('\n')
    expect(skipLine(reason)).toMatch(
      /^vmctl: skipping VM tests, .*Fix: run vmctl setup.*VMCTL_REQUIRE=1 fails them instead\)$/,
    )
    expect(oneLine('one line. Fix: this.')).toBe('one line. Fix: this.')
  })
})

describe('diagnostics of a failed test', () => {
  test('a VM that died is not given its console tail twice (the VmExitedError has it)', async () => {
    const error = new VmExitedError('vm-x', 'the guest kernel panicked', 'TAIL-LINE')
    const dead = {
      name: 'vm-x',
      // biome-ignore lint/correctness/useYield: a VM that died fails its first log read
      async *logs() {
        throw error
      },
    } as unknown as VM
    const text = await vmDiagnostics(dead)
    expect(`${error.message}${text}`.split('TAIL-LINE')).toHaveLength(2)
    expect(text).toContain('its last console lines are in the error above')
  })

  test('nor is a VM whose QEMU ended unasked (the VmStoppedError has it); a stop vmctl made has none', async () => {
    const unasked = new VmStoppedError('vm-x', 'stopped', 'QEMU was killed by SIGKILL', 'TAIL-LINE')
    const stopped = (error: Error) =>
      ({
        name: 'vm-x',
        // biome-ignore lint/correctness/useYield: a stopped VM fails its first log read
        async *logs() {
          throw error
        },
      }) as unknown as VM
    const text = await vmDiagnostics(stopped(unasked))
    expect(`${unasked.message}${text}`.split('TAIL-LINE')).toHaveLength(2)
    expect(new VmStoppedError('vm-x', 'stopped').consoleTail).toBeUndefined()
  })
})
