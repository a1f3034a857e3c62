import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { InvalidOptionsError } from '../errors.js'
import { VM } from './vm.js'

/**
 * Commands on a pseudo-terminal in the guest (`tty`), as `ssh -t` and `docker exec -t` run them:
 * made by the agent's spawner, the command's controlling terminal.
 */
let vm: VM
beforeAll(async () => {
  vm = await VM.up()
})
afterAll(async () => {
  await vm?.destroy()
})

describe('tty (vm)', () => {
  test('exec: stdin, stdout and stderr are a terminal of the size asked; its output is stdout', async () => {
    const result = await vm.exec(
      'tty; stty size; test -t 0 && test -t 1 && test -t 2 && echo all three; echo to-stderr >&2',
      {
        tty: { rows: 30, cols: 100 },
      },
    )
    expect(result.stdout).toMatch(/^\/dev\/pts\/\d+\r\n30 100\r\nall three\r\nto-stderr\r\n$/)
    expect(result.stderr).toBe('')
    // Without tty: pipes, as always.
    expect((await vm.exec('test -t 1 || echo not a tty')).stdout).toBe('not a tty\n')
  })

  test('spawn: what is typed is echoed and read; resize() reaches the program; Ctrl-D ends its input', async () => {
    const cat = vm.spawn('cat', { tty: true })
    let seen = ''
    cat.stdout.on('data', (chunk: Buffer) => (seen += chunk))
    cat.stdin!.write('hello\n')
    await expect.poll(() => seen, { timeout: 10_000 }).toBe('hello\r\nhello\r\n') // the echo, then cat's copy
    cat.stdin!.end() // the terminal's end-of-file: cat ends
    expect((await cat.wait()).exitCode).toBe(0)

    const sized = vm.spawn(`trap 'stty size' WINCH; stty size; while :; do sleep 0.05; done`, { tty: true })
    expect(await sized.waitForOutput('24 80')).toBe('24 80')
    sized.resize({ rows: 50, cols: 132 })
    expect(await sized.waitForOutput('50 132')).toBe('50 132')
    sized.stdin!.write('\x03') // Ctrl-C: SIGINT to the terminal's foreground process group
    const ended = await sized.wait()
    expect(ended.signal ?? `exit ${ended.exitCode}`).toMatch(/^(SIGINT|exit 130)$/)
  })

  test('a size that is not one is refused before anything runs', () => {
    for (const tty of [
      { rows: 0, cols: 80 },
      { rows: 24, cols: 1.5 },
      { rows: 24, cols: 70_000 },
    ])
      expect(() => vm.spawn('true', { tty })).toThrow(InvalidOptionsError)
  })
})
