import { describe, expect, test } from 'vitest'
import { isBareShell } from './exec-and-report.js'

describe('the hint for a shell run without -t', () => {
  test('a shell with no script is one a user means to type into; anything with a command is not', () => {
    for (const command of ['bash', 'sh', ['/bin/bash'], ['zsh', '-l'], 'bash -il', 'dash --login'])
      expect(isBareShell(command), String(command)).toBe(true)
    for (const command of [
      'bash -c true',
      ['sh', 'script.sh'],
      'ls',
      'bash script.sh',
      'ssh host',
      'fish -c x',
    ])
      expect(isBareShell(command), String(command)).toBe(false)
  })
})
