import { describe, expect, it } from 'vitest'
import { closestName } from './closest-name.js'

const VM_FIELDS = ['name', 'memoryMiB', 'cpus', 'kernel', 'kernelArgs', 'qemuArgs', 'bootTimeoutMs', 'ports']

describe('closestName', () => {
  it.each([
    ['memroy', 'memoryMiB'],
    ['memory', 'memoryMiB'],
    ['memoryMib', 'memoryMiB'],
    ['cpu', 'cpus'],
    ['kernel_args', 'kernelArgs'],
    ['kernalArgs', 'kernelArgs'],
    ['bootTimeout', 'bootTimeoutMs'],
    ['prots', 'ports'],
  ])('%s -> %s', (typo, meant) => {
    expect(closestName(typo, VM_FIELDS)).toBe(meant)
  })

  it('suggests nothing for a name unlike any known one', () => {
    expect(closestName('zzz', VM_FIELDS)).toBeUndefined()
    expect(closestName('network', VM_FIELDS)).toBeUndefined()
    expect(closestName('', VM_FIELDS)).toBeUndefined()
  })

  it('guesses nothing from one letter, and no prefix from two', () => {
    const commands = ['setup', 'run', 'up', 'exec', 'down', 'ps']
    expect(closestName('q', commands)).toBeUndefined()
    expect(closestName('x', ['config', 'memory', 'qemu-arg'])).toBeUndefined()
    expect(closestName('q', ['config', 'memory', 'qemu-arg'])).toBeUndefined()
    expect(closestName('U', commands)).toBeUndefined()
    expect(closestName('rn', commands)).toBe('run')
    expect(closestName('P', ['p', 'memory'])).toBe('p')
  })
})
