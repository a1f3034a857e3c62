import { describe, expect, test } from 'vitest'
import { InvalidOptionsError } from '../errors.js'
import { displayCommand, ExecError } from './exec-result.js'
import { validateVmOptions } from './vm-options.js'

describe('VM options', () => {
  test('valid options pass through', () => {
    expect(validateVmOptions({ memoryMiB: 512, ports: [80], env: { A: 'b' }, accel: 'tcg' })).toEqual({
      memoryMiB: 512,
      ports: [80],
      env: { A: 'b' },
      accel: 'tcg',
    })
    expect(validateVmOptions(undefined)).toEqual({})
  })

  test('unknown fields and wrong types are named', () => {
    expect(() => validateVmOptions({ memory: 512 })).toThrow(InvalidOptionsError)
    expect(() => validateVmOptions({ memory: 512 })).toThrow(
      /unknown VM option "memory" \(did you mean memoryMiB\?\); known options: name, memoryMiB/,
    )
    expect(() => validateVmOptions({ memroy: 512 })).toThrow(/"memroy" \(did you mean memoryMiB\?\)/)
    expect(() => validateVmOptions({ zzz: 1 })).toThrow(/unknown VM option "zzz"; known options/)
    expect(() => validateVmOptions({ ports: [80, 70000] })).toThrow(
      /ports must be port\[\] \(8080, "53\/udp"\)/,
    )
    expect(() => validateVmOptions({ ports: ['53/sctp'] })).toThrow(/ports must be port\[\]/)
    expect(validateVmOptions({ ports: [80, '53/udp', '8080/tcp'] }).ports).toEqual([80, '53/udp', '8080/tcp'])
    expect(() => validateVmOptions({ env: { A: 1 } })).toThrow(/env must be Record<string, string>/)
    expect(() => validateVmOptions('big')).toThrow(/must be an object/)
  })

  test('keepSpare: a boolean, or { idleMs } for a spare that outlives the process (up to an hour)', () => {
    expect(validateVmOptions({ keepSpare: true })).toEqual({ keepSpare: true })
    expect(validateVmOptions({ keepSpare: { idleMs: 60_000 } })).toEqual({ keepSpare: { idleMs: 60_000 } })
    for (const keepSpare of [{ idleMs: 0 }, { idleMs: 3_600_001 }, { idleMs: 1.5 }, { idle: 5 }, {}, 'yes'])
      expect(() => validateVmOptions({ keepSpare })).toThrow(
        /VM option keepSpare must be boolean or \{ idleMs \}/,
      )
  })

  test('init= in kernelArgs is refused with the reason', () => {
    for (const arg of ['init=/bin/sh', 'rdinit=/sbin/init'])
      expect(() => validateVmOptions({ kernelArgs: ['quiet', arg] })).toThrow(
        `kernelArgs "${arg}" cannot be used: vmctl's own init must run as PID 1`,
      )
    expect(() => validateVmOptions({ kernelArgs: ['quiet', 'vmctl_init=x', 'noinit=1'] })).not.toThrow()
  })
})

describe('exec results', () => {
  test('an ExecError carries the result and shows the output', () => {
    const error = new ExecError('vm-1', {
      command: 'make test',
      exitCode: 2,
      signal: undefined,
      stdout: 'built\n',
      stderr: 'boom\n',
      durationMs: 12,
      timedOut: false,
      failed: true,
      oomKills: [],
    })
    expect(error.shortMessage).toBe('Command failed with exit code 2 in VM vm-1: make test')
    expect(error.message).toContain('--- stderr ---\nboom')
    expect(error.code).toBe('EXEC_FAILED')
    expect(displayCommand(['echo', 'a b', "it's"])).toBe(`echo 'a b' 'it'\\''s'`)
  })

  test("an ExecError of a command the guest's OOM killer hit says so, with the fix", () => {
    const error = new ExecError('vm-1', {
      command: 'python3 big.py',
      exitCode: undefined,
      signal: 'SIGKILL',
      stdout: '',
      stderr: '',
      durationMs: 900,
      timedOut: false,
      failed: true,
      oomKills: [{ pid: 312, command: 'python3', cgroup: false }],
    })
    expect(error.shortMessage).toBe(
      "Command was killed by SIGKILL in VM vm-1: python3 big.py; the guest ran out of memory while it ran, and its kernel's OOM killer killed python3 (pid 312). Fix: give the VM more memory (VM.up({ memoryMiB }), memoryMiB in vmctl.toml, vmctl --memory)",
    )
    expect(error.oomKills).toEqual([{ pid: 312, command: 'python3', cgroup: false }])
    const inCgroup = new ExecError('vm-1', {
      ...error,
      oomKills: [{ pid: 9, command: 'tail', cgroup: true }],
    })
    expect(inCgroup.shortMessage).toMatch(
      /killed tail \(pid 9\) at a memory cgroup's limit. Fix: raise that cgroup's memory.max$/,
    )
    expect(inCgroup.shortMessage).not.toMatch(/memoryMiB/)
  })
})
