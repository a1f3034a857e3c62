import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { InvalidOptionsError } from '../errors.js'
import { ExecError } from './exec-result.js'
import { VM } from './vm.js'

/**
 * vm.exec() keeps a command's output in memory: a command that writes without end (`yes`) or more
 * than a string can hold would take the caller's process down with it. Past `maxBuffer` bytes of a
 * stream the command is killed and fails saying why and what to do instead.
 */
let vm: VM
beforeAll(async () => {
  vm = await VM.up()
})
afterAll(async () => {
  await vm?.destroy()
})

describe('output past maxBuffer (vm)', () => {
  test('a command that writes without end is killed at maxBuffer, with the first bytes kept and the fix', async () => {
    const error = await vm.exec('yes vmctl', { maxBuffer: 1024 * 1024 }).catch((e) => e)
    expect(error).toBeInstanceOf(ExecError)
    expect((error as ExecError).stdout).toHaveLength(1024 * 1024)
    expect((error as ExecError).stdout.startsWith('vmctl\nvmctl\n')).toBe(true)
    expect((error as ExecError).signal).toBe('SIGKILL')
    expect((error as ExecError).outputCapped).toEqual({ stream: 'stdout', maxBuffer: 1024 * 1024 })
    expect((error as ExecError).shortMessage).toMatch(
      /^Command was killed in VM \S+: yes vmctl; its stdout passed maxBuffer \(1048576 bytes, which the result keeps\)\. Fix: raise maxBuffer, stream the output/,
    )
  })

  test('stderr too, reject: false gives the result; output within it is untouched; a bad value is refused', async () => {
    const result = await vm.exec('head -c 300000 /dev/zero >&2; echo done', {
      maxBuffer: 100_000,
      reject: false,
    })
    expect(result.failed).toBe(true)
    expect(result.outputCapped).toEqual({ stream: 'stderr', maxBuffer: 100_000 })
    expect(result.stderr).toHaveLength(100_000)
    const within = await vm.exec('head -c 100000 /dev/zero | tr "\\0" x', { maxBuffer: 100_000 })
    expect(within.stdout).toHaveLength(100_000)
    expect(within.outputCapped).toBeUndefined()
    await expect(vm.exec('true', { maxBuffer: 0 })).rejects.toBeInstanceOf(InvalidOptionsError)
  })
})
