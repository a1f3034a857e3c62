import { describe } from 'vitest'
import { expect, test } from './index.js'

const bootId = async (vm: { exec(c: string): Promise<{ stdout: string }> }) =>
  (await vm.exec('cat /proc/sys/kernel/random/boot_id')).stdout.trim()

const seen: Record<string, string[]> = { vm: [], fileVm: [] }

describe('vitest fixtures (vm)', () => {
  test.override({ vmOptions: { ports: [8080], env: { GREETING: 'hi' } } })

  test('vm is a fresh VM with the options of test.override, and writes to it stay in it', async ({ vm }) => {
    seen.vm!.push(await bootId(vm))
    expect(vm.forwardedPort(8080)).toBeGreaterThan(0)
    expect(await vm.exec('echo $GREETING')).toHaveStdout('hi')
    await vm.writeFile('/tmp/marker', 'first')
    await expect(vm).toHaveFile('/tmp/marker', 'first')
  })

  test('the next test gets another VM', async ({ vm }) => {
    seen.vm!.push(await bootId(vm))
    expect(seen.vm![0]).not.toBe(seen.vm![1])
    await expect(vm).not.toHaveFile('/tmp/marker')
  })
})

describe('vitest file-scoped fixture (vm)', () => {
  test('fileVm is booted on first use', async ({ fileVm }) => {
    seen.fileVm!.push(await bootId(fileVm))
    await fileVm.writeFile('/tmp/kept', 'x')
  })

  test('and the same VM serves the next test', async ({ fileVm }) => {
    seen.fileVm!.push(await bootId(fileVm))
    expect(seen.fileVm![1]).toBe(seen.fileVm![0])
    await expect(fileVm).toHaveFile('/tmp/kept')
  })
})

describe('vitest worker-scoped fixture and matcher messages (vm)', () => {
  const worker: string[] = []

  test('failure messages show what the VM had', async ({ workerVm: vm }) => {
    worker.push(await bootId(vm))
    const failing = async (assertion: Promise<unknown> | (() => unknown)) => {
      try {
        await (typeof assertion === 'function' ? assertion() : assertion)
      } catch (error) {
        return (error as Error).message
      }
      throw new Error('the assertion passed')
    }
    const r = await vm.exec('echo out; echo err >&2; exit 2', { reject: false })
    expect(await failing(() => expect(r).toSucceed())).toMatch(
      /exited with 2\n--- stdout ---\nout\n--- stderr ---\nerr/,
    )
    expect(await failing(() => expect(r).toFailWith(3))).toMatch(/to exit with 3, but it exited with 2/)
    expect(await failing(() => expect(r).toHaveStdout('nope'))).toMatch(/--- stdout ---\nout/)
    expect(r).toFailWith(2)
    expect(await failing(expect(vm).toHaveFile('/etc/nope/x'))).toMatch(
      /does not exist\n--- ls -la \/etc\/nope ---\n.*No such file/,
    )
    expect(await failing(expect(vm).toHaveProcess('no-such-daemon'))).toMatch(
      /--- processes ---\n[\s\S]*vmctl-agent/,
    )
    expect(await failing(expect(vm).toHaveIpAddress('192.0.2.99'))).toMatch(
      /--- addresses ---\n[\s\S]*lo\s+127\.0\.0\.1\/8/,
    )
    const server = vm.spawn(['node', '-e', "require('net').createServer().listen(7777, '0.0.0.0')"])
    await expect
      .poll(() => vm.exec('cat /proc/net/tcp'), { timeout: 30_000 })
      .toHaveStdout(/:1E61 0+:0000 0A/)
    expect(await failing(expect(vm).toHaveListeningPort(7778))).toMatch(
      /--- listening TCP ports ---\n[\s\S]*0\.0\.0\.0:7777/,
    )
    await expect(vm).toHaveListeningPort(7777)
    server.kill('SIGKILL')
    await server.wait()
  })

  test('workerVm is the same VM for the next test', async ({ workerVm }) => {
    worker.push(await bootId(workerVm))
    expect(worker[1]).toBe(worker[0])
  })
})
