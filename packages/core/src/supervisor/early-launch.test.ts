import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'
import { parseEarlyLaunch } from './early-launch.js'

const dir = mkdtempSync(join(tmpdir(), 'vmctl-early-launch-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// The built module, in a child spawned as a spare supervisor is (spare-supervisor.ts): stdin a
// pipe from Node, i.e. a socketpair. The child prints what now() saw, then what whole() read.
const built = fileURLToPath(new URL('../../dist/supervisor/early-launch.js', import.meta.url))

/** A child that waits `delayMs`, then reads as supervisor-main.ts does; its two lines of output. */
function reader(delayMs: number, stdin: 'pipe' | number = 'pipe') {
  const script = `const { EarlyLaunchReader } = await import(${JSON.stringify(built)})
await new Promise((resolve) => setTimeout(resolve, ${delayMs}))
const reader = new EarlyLaunchReader()
const now = reader.now()
process.stdout.write(JSON.stringify(now === 'pending' ? now : now.launch ?? null) + '\\n')
process.stdout.write(JSON.stringify((await reader.whole()) ?? null) + '\\n')`
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: [stdin, 'pipe', 'inherit'],
  })
  const lines: unknown[] = []
  let text = ''
  const waiters: (() => void)[] = []
  child.stdout!.on('data', (chunk: Buffer) => {
    text += chunk
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n')) {
      lines.push(JSON.parse(text.slice(0, end)))
      text = text.slice(end + 1)
      waiters.shift()?.()
    }
  })
  const line = async (n: number) => {
    while (lines.length <= n) await new Promise<void>((resolve) => waiters.push(resolve))
    return lines[n]
  }
  return { child, line }
}

/** Its exit status: it ends by itself once it has read (the socket on its stdin holds nothing open). */
const exited = async (child: ChildProcess) =>
  child.exitCode !== null ? child.exitCode : ((await once(child, 'exit')) as [number | null])[0]
const launch = { path: '/run/vmctl/vms/vm-1', plan: '{"command":["qemu"]}' }
const written = `${JSON.stringify(launch.path)}\n${launch.plan}`

describe('the launch a supervisor started early reads on its stdin', () => {
  test('there before it looks: read at once, without waiting (its QEMU starts before the loading)', async () => {
    const { child, line } = reader(500)
    child.stdin!.end(written)
    expect(await line(0)).toEqual(launch)
    expect(await line(1)).toEqual(launch)
    expect(await exited(child)).toBe(0)
  })

  test('not there yet: pending, then read whole when the caller ends it', async () => {
    const { child, line } = reader(0)
    expect(await line(0)).toBe('pending')
    child.stdin!.write(`${JSON.stringify(launch.path)}\n`) // VM.up() hands the directory over first,
    await new Promise((resolve) => setTimeout(resolve, 200))
    child.stdin!.end(launch.plan) // then the plan, and the end
    expect(await line(1)).toEqual(launch)
    expect(await exited(child)).toBe(0)
  })

  test('a caller that ends it with nothing, at once or later (killed), launches nothing', async () => {
    const early = reader(500)
    early.child.stdin!.end()
    expect(await early.line(0)).toBeNull()
    expect(await early.line(1)).toBeNull()

    const late = reader(0)
    expect(await late.line(0)).toBe('pending')
    late.child.stdin!.destroy()
    expect(await late.line(1)).toBeNull()
    expect(await exited(late.child)).toBe(0)
  })

  test('stdin that is not a pipe (a supervisor started by hand) holds no launch', async () => {
    const file = join(dir, 'stdin')
    writeFileSync(file, written)
    const fd = openSync(file, 'r')
    try {
      const { line } = reader(0, fd)
      expect(await line(0)).toBeNull()
      expect(await line(1)).toBeNull()
    } finally {
      closeSync(fd)
    }
  })

  test('parsed: the directory on the first line, the plan after it', () => {
    expect(parseEarlyLaunch(written)).toEqual(launch)
    expect(parseEarlyLaunch(`${JSON.stringify(launch.path)}\n`)).toEqual({ path: launch.path, plan: '' })
    expect(parseEarlyLaunch('')).toBeUndefined()
    expect(parseEarlyLaunch(JSON.stringify(launch.path))).toBeUndefined() // killed while writing
    expect(parseEarlyLaunch('"relative/dir"\n')).toBeUndefined()
    expect(parseEarlyLaunch('not json\n')).toBeUndefined()
  })
})
