import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import { GuestSetupPort, RootMountError } from './guest-setup-port.js'

// The guest side here is a stand-in speaking guest-setup's line protocol: these tests pin the host
// side's parsing. The real guest-setup answers in every VM test (templates.vm.test.ts, images).
const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup()
})

async function fakeGuest(
  answer: (line: string) => string | undefined,
): Promise<{ path: string; lines: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'setup-port-'))
  const path = join(dir, 's')
  const lines: string[] = []
  const server = net.createServer((socket) => {
    let buffered = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      buffered += chunk
      for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
        const line = buffered.slice(0, i)
        buffered = buffered.slice(i + 1)
        lines.push(line)
        const reply = answer(line)
        if (reply !== undefined) socket.write(reply)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(path, resolve))
  cleanups.push(() => {
    server.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return { path, lines }
}

const forever = () => new AbortController().signal

describe('the guest-setup port, host side', () => {
  test('a refresh sends the host time, hostname, 64 bytes of entropy and the modules path, and reads the clock step', async () => {
    const guest = await fakeGuest((line) => `OK ${line.split(' ')[1]} 1500000000\n`)
    const port = (await GuestSetupPort.connect(guest.path, () => true))!
    const before = Date.now()
    expect(
      await port.refresh('vm-1', forever(), '/home/ci/.cache/vmctl/kernels/6.1/lib/modules/6.1'),
    ).toEqual({
      clockStepMs: 1500,
    })
    const [kind, id, timeNs, hostname, entropy, modules] = guest.lines[0]!.split(' ')
    expect([kind, hostname, modules]).toEqual([
      'REFRESH',
      'vm-1',
      '/home/ci/.cache/vmctl/kernels/6.1/lib/modules/6.1',
    ])
    expect(id).toMatch(/^[0-9a-f]{12}$/)
    expect(Number(BigInt(timeNs!) / 1_000_000n)).toBeGreaterThanOrEqual(before - 1)
    expect(entropy).toMatch(/^[0-9a-f]{128}$/)
    // No modules, or a path one field cannot carry: "-", and the guest keeps its own.
    await port.refresh('vm-1', forever(), '/a path/with spaces')
    await port.refresh('vm-1', forever())
    expect(guest.lines.slice(1).map((line) => line.split(' ')[5])).toEqual(['-', '-'])
    port.close()
  })

  test('answers are matched by id, a stale or foreign line is ignored', async () => {
    const guest = await fakeGuest((line) => {
      const id = line.split(' ')[1]
      return `OK 000000000000 1\nERR ${id} the root is not mounted yet (deferred until a refresh)\n`
    })
    const port = (await GuestSetupPort.connect(guest.path, () => true))!
    const error = await port.rootReady(forever()).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(RootMountError)
    expect((error as Error).message).toBe('the root is not mounted yet (deferred until a refresh)')
    port.close()
  })

  test('a guest that never answers is bounded by the signal; a closed port fails pending calls', async () => {
    const guest = await fakeGuest(() => undefined)
    const port = (await GuestSetupPort.connect(guest.path, () => true))!
    await expect(port.rootReady(AbortSignal.timeout(50))).rejects.toThrow(/timeout|aborted/i)
    const pending = port.refresh('vm-2', forever())
    port.close()
    await expect(pending).rejects.toThrow(/setup port closed/)
  })

  test('connecting gives up once the VM is gone', async () => {
    expect(await GuestSetupPort.connect('/nonexistent/setup.sock', () => false)).toBeUndefined()
  })
})
