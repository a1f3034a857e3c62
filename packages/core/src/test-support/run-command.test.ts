import { describe, expect, test } from 'vitest'
import { runCommand, runForBytes } from './run-command.js'

describe('runCommand', () => {
  test('stdout, stdin, and a failure with its stderr', async () => {
    expect((await runCommand('sh', ['-c', 'cat; echo done'], { input: 'in\n' })).stdout).toBe('in\ndone\n')
    await expect(runCommand('sh', ['-c', 'echo bad >&2; exit 3'])).rejects.toThrow('exit 3: bad')
    expect(await runCommand('sh', ['-c', 'exit 3'], { allowFailure: true })).toMatchObject({ code: 3 })
    expect(await runCommand('sh', ['-c', 'kill -9 $$'], { allowFailure: true })).toMatchObject({
      signal: 'SIGKILL',
    })
  })

  test("the worker's event loop runs while the command does", async () => {
    let ticks = 0
    const timer = setInterval(() => ticks++, 10)
    await runCommand('sleep', ['0.3'])
    clearInterval(timer)
    expect(ticks).toBeGreaterThan(5)
  })

  test('bytes through a binary filter', async () => {
    const data = Buffer.from([0, 1, 2, 255, 10, 13])
    expect((await runForBytes('cat', [], data)).equals(data)).toBe(true)
  })
})
