import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { useBuiltSpawner } from '../test-support/built-spawner.js'
import type { CommandProcess } from './spawner.js'

// The built spawner on the host, driven by spawner.ts as the agent drives it.
const spawner = useBuiltSpawner()

const ENV = { PATH: '/usr/bin:/bin' }

function run(command: CommandProcess | undefined) {
  if (!command) throw new Error('the spawner did not take the command')
  const out: Buffer[] = []
  command.stdout?.on('data', (chunk: Buffer) => out.push(chunk))
  command.stderr?.resume()
  return new Promise<{ code: number | null; signal: string | null; stdout: string; error?: Error }>(
    (resolve) => {
      let exit: [number | null, string | null] = [null, null]
      command.on('error', (error: Error) => resolve({ code: null, signal: null, stdout: '', error }))
      command.on('exit', (code: number | null, signal: string | null) => {
        exit = [code, signal]
      })
      command.on('close', () =>
        resolve({ code: exit[0], signal: exit[1], stdout: Buffer.concat(out).toString() }),
      )
    },
  )
}

const ownFds = () => readdirSync('/proc/self/fd').length

describe('the spawner (built, on the host)', () => {
  test('it places the command: cwd, a PATH lookup, and says which step failed', async () => {
    const pwd = await run(spawner()('pwd', [], ENV, false, { root: undefined, cwd: '/usr' }))
    expect([pwd.code, pwd.stdout]).toEqual([0, '/usr\n'])
    const stage = async (file: string, cwd: string) =>
      (
        (await run(spawner()(file, [], ENV, false, { root: undefined, cwd }))).error as {
          stage?: string
        }
      )?.stage
    expect(await stage('no-such-command-xyz', '/')).toBe('path')
    expect(await stage('true', '/no/such/dir')).toBe('cwd')
    expect(await stage('/no/such/binary', '/')).toBe('exec')
  })

  test('a PATH entry whose #! interpreter is missing is passed over, as execvp does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmctl-spawner-path-'))
    try {
      for (const [bin, line] of [
        ['bin1', '#!/no/such/interp'],
        ['bin2', '#!/bin/sh'],
      ] as const) {
        mkdirSync(join(dir, bin))
        writeFileSync(join(dir, bin, 'wrapped'), `${line}\necho ${bin}\n`, { mode: 0o755 })
      }
      const env = { PATH: `${dir}/bin1:${dir}/bin2:/usr/bin:/bin` }
      const ran = await run(spawner()('wrapped', [], env, false, { root: undefined, cwd: '/' }))
      expect([ran.code, ran.stdout]).toEqual([0, 'bin2\n'])
      // Only the broken one: the exec fails (127 in the agent), not "not on PATH".
      const only = { PATH: `${dir}/bin1:/usr/bin:/bin` }
      const broken = await run(spawner()('wrapped', [], only, false, { root: undefined, cwd: '/' }))
      expect((broken.error as { stage?: string; code?: string }) ?? {}).toMatchObject({
        stage: 'exec',
        code: 'ENOENT',
      })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('a NUL in a field, or a request past its bounds, is not sent to it (child_process takes it)', async () => {
    const place = { root: undefined, cwd: '/' }
    expect(spawner()('echo', ['a\0b'], ENV, false, place)).toBeUndefined()
    expect(spawner()('echo', [], { ...ENV, X: 'a\0S' }, false, place)).toBeUndefined()
    expect(
      spawner()(
        'echo',
        Array.from({ length: 9000 }, () => 'x'),
        ENV,
        false,
        place,
      ),
    ).toBeUndefined()
    expect(spawner()('echo', ['x'.repeat(1 << 20)], ENV, false, place)).toBeUndefined()
    // And it still runs the next one.
    expect((await run(spawner()('echo', ['next'], ENV, false, place))).stdout).toBe('next\n')
  })

  test('more than 256 commands at once all run', async () => {
    const place = { root: undefined, cwd: '/' }
    const results = await Promise.all(
      Array.from({ length: 300 }, () => run(spawner()('sleep', ['0.5'], ENV, false, place))),
    )
    expect(results.filter((r) => r.code === 0).length).toBe(300)
  }, 60_000)

  test('a kill before the command runs reaches it once it runs', async () => {
    const command = spawner()('sleep', ['30'], ENV, false, { root: undefined, cwd: '/' })
    expect(command?.pid).toBeUndefined()
    command?.kill('SIGKILL')
    const result = await run(command)
    expect(result.signal).toBe('SIGKILL')
  })

  test("a short command's start comes with its exit; a silent one's after the hold; a kill does not wait for it", async () => {
    const place = (holdStartedMs: number) => ({ root: undefined, cwd: '/', holdStartedMs })
    // Whether a turn of the event loop passed between 'spawn' and 'exit' (two reads, two wake-ups).
    const apart = (command: CommandProcess | undefined) =>
      new Promise<boolean>((resolve) => {
        let turned = false
        command?.on('spawn', () => setImmediate(() => (turned = true)))
        command?.on('exit', () => resolve(turned))
        command?.stdout?.resume()
        command?.stderr?.resume()
      })
    const held: boolean[] = []
    const atOnce: boolean[] = []
    for (let i = 0; i < 10; i++) {
      held.push(await apart(spawner()('true', [], ENV, false, place(5000))))
      atOnce.push(await apart(spawner()('true', [], ENV, false, place(0))))
    }
    expect(held).not.toContain(true)
    // Said at once (the path before), the start and the exit come apart: the check can tell.
    expect(atOnce).toContain(true)
    // A command that says nothing gets its pid once the hold is over, long before its end.
    const silent = spawner()('sleep', ['30'], ENV, false, place(200))
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(silent?.pid).toBeUndefined()
    await expect.poll(() => silent?.pid, { timeout: 5000 }).toBeGreaterThan(0)
    silent?.kill('SIGKILL')
    expect((await run(silent)).signal).toBe('SIGKILL')
    // A kill before the pid asks the spawner for it ("W"): it does not wait out a 20 s hold.
    const killed = spawner()('sleep', ['30'], ENV, false, place(20_000))
    const startedAt = Date.now()
    killed?.kill('SIGKILL')
    expect((await run(killed)).signal).toBe('SIGKILL')
    expect(Date.now() - startedAt).toBeLessThan(10_000)
  }, 30_000)

  test('a stdin pipe that the caller never ended is closed when the command exits', async () => {
    const place = { root: undefined, cwd: '/' }
    await run(spawner()('true', [], ENV, true, place)) // the spawner itself is up
    const before = ownFds()
    for (let i = 0; i < 20; i++) await run(spawner()('true', [], ENV, true, place))
    await new Promise((resolve) => setImmediate(resolve))
    expect(ownFds() - before).toBeLessThan(5)
  })

  test('output is relayed by the spawner: the agent holds no pipe of a running command', async () => {
    const place = { root: undefined, cwd: '/' }
    await run(spawner()('true', [], ENV, false, place)) // the spawner itself is up
    const before = ownFds()
    const sleeping = Array.from({ length: 20 }, () => spawner()('sleep', ['1'], ENV, false, place))
    const results = Promise.all(sleeping.map(run))
    await new Promise((resolve) => setTimeout(resolve, 300))
    // Before the relay, each held two (its stdout and stderr, opened through /proc): +40.
    expect(ownFds() - before).toBeLessThan(5)
    expect((await results).every((r) => r.code === 0)).toBe(true)
    // Pipe mode (vmctl_exec_via=pipes, the path before) still works.
    const piped = await run(spawner()('echo', ['piped'], ENV, false, { ...place, pipes: true }))
    expect([piped.code, piped.stdout]).toEqual([0, 'piped\n'])
  })

  test('every byte of stdout and stderr arrives, in order per stream, before the exit', async () => {
    const place = { root: undefined, cwd: '/' }
    for (const pipes of [false, true]) {
      const command = spawner()(
        'sh',
        ['-c', 'seq 1 200000; seq 1 50000 >&2; echo last; exit 3'],
        ENV,
        false,
        { ...place, pipes },
      )
      const outputs: Buffer[] = []
      const errors: Buffer[] = []
      command?.stdout?.on('data', (chunk: Buffer) => outputs.push(chunk))
      command?.stderr?.on('data', (chunk: Buffer) => errors.push(chunk))
      let exitedWith: number | null = null
      let atExit = [0, 0]
      command?.on('exit', (code: number | null) => {
        exitedWith = code
        atExit = [Buffer.concat(outputs).length, Buffer.concat(errors).length]
      })
      const result = await run(command)
      const seq = (n: number) => Array.from({ length: n }, (_, i) => `${i + 1}\n`).join('')
      expect(result.code).toBe(3)
      expect(exitedWith).toBe(3)
      // Relayed, all of it came before the exit (the exec service starts its 500 ms cut there);
      // in pipe mode the exit waits a turn of the event loop only.
      if (!pipes) expect(atExit).toEqual([seq(200000).length + 5, seq(50000).length])
      expect(result.stdout === `${seq(200000)}last\n`).toBe(true)
      expect(Buffer.concat(errors).toString() === seq(50000)).toBe(true)
    }
  })

  test('a command writing more than the caller reads blocks on its pipe: what is held is bounded', async () => {
    const command = spawner()('head', ['-c', String(64 << 20), '/dev/zero'], ENV, false, {
      root: undefined,
      cwd: '/',
    })
    if (!command?.stdout) throw new Error('the spawner did not take the command')
    let exited = false
    command.on('exit', () => {
      exited = true
    })
    command.stdout.pause()
    command.stderr?.resume()
    await new Promise((resolve) => setTimeout(resolve, 1500))
    // 64 MiB on the host's pipes take well under a second: it is held back, not slow.
    expect(exited).toBe(false)
    // The relay's window (1 MiB) and a chunk: nothing like the 64 MiB offered.
    expect(command.stdout.readableLength).toBeLessThanOrEqual(1280 * 1024)
    let total = 0
    command.stdout.on('data', (chunk: Buffer) => {
      total += chunk.length
    })
    command.stdout.resume()
    await new Promise((resolve) => command.on('close', resolve))
    expect(total).toBe(64 << 20)
  }, 60_000)

  test('a command whose output ends after its exit was sent frees its slot (the table does not grow)', async () => {
    const { spawnerSlots } = await import('./spawner.js')
    const place = { root: undefined, cwd: '/' }
    await run(spawner()('true', [], ENV, false, place)) // the spawner itself is up
    const before = await spawnerSlots()
    // More than the relay's window (1 MiB), read only after the exit: the rest of it waits in the
    // pipe, so its end (EOF) comes after the exit was sent (a host slower than the guest).
    for (let i = 0; i < 20; i++) {
      const command = spawner()('head', ['-c', '1100000', '/dev/zero'], ENV, false, place)
      if (!command?.stdout) throw new Error('the spawner did not take the command')
      command.stdout.pause()
      command.stderr?.resume()
      await new Promise((resolve) => command.on('exit', resolve))
      let total = 0
      command.stdout.on('data', (chunk: Buffer) => {
        total += chunk.length
      })
      command.stdout.resume()
      await new Promise((resolve) => command.on('close', resolve))
      expect(total).toBe(1_100_000)
    }
    // A background child that holds the pipe past the exit, and ends.
    const late = await run(spawner()('sh', ['-c', '(sleep 0.2; echo late) & echo early'], ENV, false, place))
    expect(late.stdout).toBe('early\nlate\n')
    // Before the fix, each of the 21 kept its slot for good.
    expect((await spawnerSlots())?.inUse).toBe(before?.inUse)
  })

  test('a stream the caller destroys is closed in the spawner: its writer gets EPIPE', async () => {
    const command = spawner()('yes', [], ENV, false, { root: undefined, cwd: '/' })
    if (!command?.stdout) throw new Error('the spawner did not take the command')
    const exit = new Promise<[number | null, string | null]>((resolve) =>
      command.on('exit', (code: number | null, signal: string | null) => resolve([code, signal])),
    )
    command.stdout.once('data', () => command.stdout?.destroy())
    command.stderr?.resume()
    expect(await exit).toEqual([null, 'SIGPIPE'])
  })
})
