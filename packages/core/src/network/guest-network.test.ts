import { describe, expect, test } from 'vitest'
import { checkAttachments } from './guest-network.js'

// The option check of VM.up({ networks }), before anything starts (no switch, no VM).
describe('VM option networks: checked before anything starts', () => {
  test('aliases given as a string are refused with the fix, not split into letters', () => {
    expect(() => checkAttachments([{ network: 'n1', aliases: 'db' }])).toThrow(
      /VM option networks: aliases must be an array of names, e.g. aliases: \["db"\]/,
    )
    expect(() => checkAttachments([{ network: 'n1', aliases: ['db'] }])).not.toThrow()
  })
})
