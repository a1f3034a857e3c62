import { describe, expect, test } from 'vitest'
import { BootTimeoutError, VmStoppedError } from './errors.js'

// The fix a VmStoppedError gives must work in the state it names: start() during a restart
// queues behind it and is refused "already running".
describe('VmStoppedError: a fix that works in each state', () => {
  test('starting: wait for the start() or restart() in progress, not another start()', () => {
    const message = new VmStoppedError('web', 'starting').message
    expect(message).toMatch(/VM web is starting .*Fix: await the vm.start\(\) or vm.restart\(\) in progress/)
    expect(message).not.toMatch(/await vm.start\(\) first/)
  })

  test('powering off: wait for the stop(), then start()', () => {
    expect(new VmStoppedError('web', 'powering-off').message).toMatch(
      /Fix: await the vm.stop\(\) in progress, then vm.start\(\)/,
    )
  })

  test('stopped: start() it', () => {
    expect(new VmStoppedError('web', 'stopped').message).toMatch(/Fix: await vm.start\(\) first/)
  })
})

// A timeout's advice follows what QEMU's CPU time says: a slow boot wants more time, a stuck one does not.
describe('BootTimeoutError: slow or stuck, from the CPU time its QEMU used', () => {
  const timeout = (qemu?: { cpuMs: number; ranMs: number }) =>
    new BootTimeoutError('web', 180_000, 'tcg', 'last line', 'the agent did not report healthy in time', qemu)
      .message

  test('a guest that worked most of the time: slow, raise the timeout', () => {
    const message = timeout({ cpuMs: 150_000, ranMs: 180_000 })
    expect(message).toContain('Its QEMU used 150.0 s of CPU time in 180.0 s: the guest was working.')
    expect(message).toContain('raise bootTimeoutMs if the machine is busy')
  })

  test('a guest that used under a tenth of the time: stuck, more time will not help', () => {
    const message = timeout({ cpuMs: 2_100, ranMs: 180_000 })
    expect(message).toContain(
      'Its QEMU used 2.1 s of CPU time in 180.0 s: the guest was waiting, not working',
    )
    expect(message).not.toContain('raise bootTimeoutMs')
  })

  test('without the figures, the advice is as before', () => {
    expect(timeout()).toContain(
      'Under TCG boots are 5-10x slower; raise bootTimeoutMs if the machine is busy.',
    )
    expect(timeout()).not.toContain('Its QEMU used')
  })
})
