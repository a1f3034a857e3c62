import { describe, expect, test } from 'vitest'
import { VmStoppedError } from './errors.js'

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
