import { describe, expect, test } from 'vitest'
import { LifecycleError, type LifecycleState, publicState, TRANSITIONS, VmLifecycle } from './vm-lifecycle.js'

const ALL = Object.keys(TRANSITIONS) as LifecycleState[]

/** A machine walked to `state` along allowed transitions. */
function machineAt(state: LifecycleState): VmLifecycle {
  const paths: Record<LifecycleState, LifecycleState[]> = {
    booting: [],
    ready: ['ready'],
    snapshotting: ['ready', 'snapshotting'],
    restoring: ['ready', 'restoring'],
    'powering-off': ['ready', 'powering-off'],
    stopped: ['ready', 'powering-off', 'stopped'],
    starting: ['ready', 'powering-off', 'stopped', 'starting'],
    stopping: ['stopping'],
    exited: ['stopping', 'exited'],
  }
  const machine = new VmLifecycle()
  for (const step of paths[state]) machine.to(step)
  return machine
}

describe('the VM lifecycle state machine', () => {
  test('every state can be reached from booting along the table', () => {
    for (const state of ALL) expect(machineAt(state).state).toBe(state)
  })

  test('each transition is allowed exactly when the table lists it, and a refused one changes nothing', () => {
    for (const from of ALL) {
      for (const to of ALL) {
        const machine = machineAt(from)
        if (TRANSITIONS[from].includes(to)) {
          machine.to(to)
          expect(machine.state).toBe(to)
        } else {
          expect(() => machine.to(to)).toThrow(LifecycleError)
          expect(machine.state).toBe(from)
        }
      }
    }
  })

  test('the life a VM leads: boot, snapshot, roll back, stop, start, restart, destroy', () => {
    const machine = new VmLifecycle()
    const seen: string[] = []
    machine.on('change', (to, from) => seen.push(`${from}>${to}`))
    for (const step of [
      'ready',
      'snapshotting',
      'ready',
      'restoring',
      'ready',
      'powering-off',
      'stopped',
    ] as const)
      machine.to(step)
    for (const step of ['starting', 'ready', 'starting', 'ready', 'stopping', 'exited'] as const)
      machine.to(step)
    expect(seen).toHaveLength(13)
    expect(seen.at(-1)).toBe('stopping>exited')
  })

  test('every state but exited can go down, and nothing leaves exited or returns from stopping', () => {
    for (const state of ALL.filter((s) => s !== 'stopping' && s !== 'exited'))
      expect(machineAt(state).can('stopping'), state).toBe(true)
    expect(TRANSITIONS.stopping).toEqual(['exited'])
    expect(TRANSITIONS.exited).toEqual([])
    expect(() => machineAt('stopping').to('ready')).toThrow('the VM is stopping: it cannot go to ready')
  })

  test('a stopped VM only starts or goes; a start that fails falls back to stopped', () => {
    expect(TRANSITIONS.stopped).toEqual(['starting', 'stopping'])
    expect(machineAt('starting').can('stopped')).toBe(true)
    expect(machineAt('stopped').can('ready')).toBe(false)
  })

  test('a QEMU that ends unasked leaves a ready (or snapshotting) VM stopped, not gone', () => {
    expect(machineAt('ready').can('stopped')).toBe(true)
    expect(machineAt('snapshotting').can('stopped')).toBe(true)
    expect(machineAt('booting').can('stopped')).toBe(false)
    expect(machineAt('restoring').can('stopped')).toBe(false)
  })

  test('the stop cause is there while stopped, written before the status is, and gone once started', () => {
    const machine = machineAt('ready')
    const seen: unknown[] = []
    machine.on('change', () => seen.push(machine.stopCause))
    machine.toStopped('QEMU was killed by SIGKILL', true)
    expect(seen).toEqual([expect.objectContaining({ how: 'QEMU was killed by SIGKILL', unexpected: true })])
    machine.to('starting')
    expect(machine.stopCause).toBeUndefined()
    expect(() => machineAt('booting').toStopped('x', true)).toThrow(LifecycleError)
  })

  test('going down, and whether an exit of QEMU is awaited by the operation under way', () => {
    expect(ALL.filter((s) => machineAt(s).goingDown)).toEqual(['stopping', 'exited'])
    expect(ALL.filter((s) => machineAt(s).qemuExitIsAwaited)).toEqual([
      'booting',
      'restoring',
      'powering-off',
      'starting',
    ])
  })

  test('the first outcome recorded is the one kept', () => {
    const machine = new VmLifecycle()
    expect(machine.end({ event: 'exited', reason: 'QEMU died', consoleTail: '' })).toBe(true)
    expect(machine.end({ event: 'exited', reason: 'destroyed', consoleTail: '' })).toBe(false)
    expect(machine.outcome).toMatchObject({ reason: 'QEMU died' })
  })

  test('a request that needs a running guest is refused outside ready, naming the state clients see', () => {
    expect(() => machineAt('ready').assertReady()).not.toThrow()
    expect(() => machineAt('stopped').assertReady()).toThrow('the VM is stopped, not ready')
    // A snapshot under way is "ready" from outside, but busy: another request must wait its turn.
    expect(() => machineAt('snapshotting').assertReady()).toThrow('the VM is snapshotting, not ready')
  })

  test('clients see a VM taking or rolling back a snapshot as ready', () => {
    expect(publicState('snapshotting')).toBe('ready')
    expect(publicState('restoring')).toBe('ready')
    expect(publicState('booting')).toBe('booting')
  })
})
