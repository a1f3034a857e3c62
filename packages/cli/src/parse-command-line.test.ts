import { describe, expect, test } from 'vitest'
import { EXEC_OPTIONS, VM_OPTIONS, vmOptionsFrom } from './cli-options.js'
import { guestCommand, parseCommandLine } from './parse-command-line.js'
import { UsageError } from './usage-error.js'

describe('command line parsing', () => {
  test('splits options from the guest command at --', () => {
    const parsed = parseCommandLine(
      ['--memory', '512', '-p', '80', '--port', '443', '--', 'ls', '-la', '--', 'x'],
      { ...VM_OPTIONS, ...EXEC_OPTIONS },
      'run',
    )
    expect(parsed.command).toEqual(['ls', '-la', '--', 'x'])
    expect(vmOptionsFrom(parsed.values)).toEqual({ memoryMiB: 512, ports: [80, 443] })
  })

  test('one word is a shell script, several are argv', () => {
    expect(guestCommand(['ls | wc -l'])).toBe('ls | wc -l')
    expect(guestCommand(['ls', '-l'])).toEqual(['ls', '-l'])
  })

  test('bad values are usage errors naming the flag', () => {
    const values = (args: string[]) => parseCommandLine(args, VM_OPTIONS, 'run').values
    expect(() => vmOptionsFrom(values(['--memory', 'lots']))).toThrow(/--memory takes a positive integer/)
    expect(() => vmOptionsFrom(values(['--port', '70000']))).toThrow(
      '--port takes a port number (1-65535), with /udp for UDP (53/udp), got "70000"',
    )
    expect(() => vmOptionsFrom(values(['--port', '53/sctp']))).toThrow(/--port takes a port number/)
    expect(vmOptionsFrom(values(['-p', '53/udp', '-p', '8080/tcp'])).ports).toEqual(['53/udp', 8080])
    expect(() => vmOptionsFrom(values(['--accel', 'fast']))).toThrow(UsageError)
    expect(() => parseCommandLine(['--nope'], VM_OPTIONS, 'run')).toThrow(/Unknown option '--nope'/)
    expect(() => parseCommandLine(['--memry', '512'], VM_OPTIONS, 'run')).toThrow(
      /Unknown option '--memry' \(did you mean --memory\?\)/,
    )
    expect(() => parseCommandLine(['--nope'], VM_OPTIONS, 'run')).not.toThrow(/did you mean/)
    expect(() => parseCommandLine(['-x'], VM_OPTIONS, 'run')).not.toThrow(/did you mean/)
    expect(() => parseCommandLine(['-q'], VM_OPTIONS, 'run')).not.toThrow(/did you mean/)
  })
})

describe('a mistyped command', () => {
  test('names the command it most likely meant, and none when nothing is close', async () => {
    const { runCli } = await import('./run-cli.js')
    await expect(runCli(['rn'])).rejects.toThrow(/unknown command "rn" \(did you mean run\?\)/)
    await expect(runCli(['frobnicate'])).rejects.toThrow(/unknown command "frobnicate"; commands:/)
    await expect(runCli(['--verison'])).rejects.toThrow(
      /unknown command "--verison" \(did you mean --version\?\)/,
    )
    await expect(runCli(['q'])).rejects.toThrow(/unknown command "q"; commands:/)
    // Object.prototype's names are not commands (they crashed with a TypeError).
    await expect(runCli(['constructor'])).rejects.toThrow(UsageError)
    await expect(runCli(['help', 'rn'])).rejects.toThrow(/unknown command "rn" \(did you mean run\?\)/)
  })
})
