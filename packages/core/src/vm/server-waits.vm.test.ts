import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import {
  CommandWaitTimeoutError,
  InvalidOptionsError,
  OutputWaitTimeoutError,
  PortWaitTimeoutError,
} from '../errors.js'
import { ExecError } from './exec-result.js'
import { VM } from './vm.js'

/**
 * Waiting for a server in the guest to listen, or to print that it is ready: what `sleep 30` and
 * hand-written polls of /proc/net/tcp did before. A server that dies first fails the wait at once,
 * with its output.
 */
let vm: VM
beforeAll(async () => {
  vm = await VM.up()
})
afterAll(async () => {
  await vm?.destroy()
})

describe('waitForCommand (vm)', () => {
  test('tries a command until it succeeds, and resolves with that run', async () => {
    vm.spawn('sleep 1; echo ready > /tmp/wfc-ready')
    const result = await vm.waitForCommand('cat /tmp/wfc-ready', { intervalMs: 100 })
    expect(result).toMatchObject({ exitCode: 0, stdout: 'ready\n' })
  })

  test('past its bound: a CommandWaitTimeoutError with the last try, at once for bad options', async () => {
    const started = performance.now()
    const error = await vm
      .waitForCommand('echo not yet >&2; exit 3', { timeoutMs: 3_000, intervalMs: 50 })
      .catch((e) => e)
    expect(error).toBeInstanceOf(CommandWaitTimeoutError)
    expect((error as CommandWaitTimeoutError).tries).toBeGreaterThanOrEqual(2)
    expect((error as CommandWaitTimeoutError).message).toMatch(
      /^echo not yet >&2; exit 3 did not succeed in VM \S+ within 3000 ms \(\d+ tries; the last exited with code 3\)\. Fix: .*\n--- stderr ---\nnot yet$/s,
    )
    expect(performance.now() - started).toBeLessThan(10_000)
    await expect(vm.waitForCommand('true', { intervalMs: -1 })).rejects.toBeInstanceOf(InvalidOptionsError)
    await expect(vm.waitForCommand('true', { timeoutMs: 0 })).rejects.toBeInstanceOf(InvalidOptionsError)
  })
})

describe('waitForPort (vm)', () => {
  test('resolves once a spawned server listens, which listeningPorts() then shows', async () => {
    const server = vm.spawn('sleep 0.5; exec busybox nc -l -p 8081')
    await server.waitForPort(8081)
    expect(await vm.listeningPorts()).toContainEqual({ address: '::', port: 8081 }) // busybox nc: IPv6, dual-stack
    await vm.waitForPort(8081) // the VM's own wait, already listening: at once
    server.kill('SIGKILL')
    await server.wait()
  })

  test('a server that fails first ends the wait at once with its exit and its output', async () => {
    const started = performance.now()
    const server = vm.spawn(
      'sleep 0.3; head -c 10000 /dev/zero | tr "\\0" x >&2; echo >&2; echo "nc: bind: Address in use" >&2; exit 3',
    )
    const error = await server.waitForPort(8082).catch((e) => e)
    expect(error).toBeInstanceOf(ExecError)
    expect((error as ExecError).exitCode).toBe(3)
    // The end of what it wrote: its last 4 KiB.
    expect((error as ExecError).stderr).toMatch(/^x+\nnc: bind: Address in use\n$/)
    expect((error as ExecError).stderr.length).toBeLessThanOrEqual(4096)
    expect((error as ExecError).message).toMatch(
      /^Command failed with exit code 3 in VM \S+ before anything listened on TCP port 8082: sleep 0.3;.*\n--- stderr ---\n…?x+\nnc: bind: Address in use$/,
    )
    expect(performance.now() - started, 'not the 60 s timeout').toBeLessThan(15_000)
  })

  test('a launcher that daemonizes its server and exits 0 is waited past', async () => {
    const launcher = vm.spawn('(sleep 1; exec busybox nc -l -p 8083) </dev/null >/dev/null 2>&1 & exit 0')
    await launcher.waitForPort(8083)
    expect((await launcher.wait()).exitCode).toBe(0)
    await vm.exec('pkill -f "nc -l -p 8083"', { reject: false })
  })

  test('nothing listening: a PortWaitTimeoutError listing what does listen; a bad port is refused', async () => {
    const server = vm.spawn('exec busybox nc -l -p 8084')
    await server.waitForPort(8084)
    const error = await vm.waitForPort(9999, { timeoutMs: 500 }).catch((e) => e)
    expect(error).toBeInstanceOf(PortWaitTimeoutError)
    expect((error as PortWaitTimeoutError).message).toMatch(
      /^nothing listened on TCP port 9999 in VM \S+ within 500 ms \(listening: .*\[::\]:8084.*\)\. Fix: check that the server was started and binds port 9999/,
    )
    server.kill('SIGKILL')
    await expect(vm.waitForPort(0)).rejects.toBeInstanceOf(InvalidOptionsError)
    await expect(vm.waitForPort(8080, { timeoutMs: 0 })).rejects.toBeInstanceOf(InvalidOptionsError)
  })
})

describe('waitForOutput (vm)', () => {
  test('matches output split over chunks, on either stream, read elsewhere or not; earlier output counts', async () => {
    const server = vm.spawn(
      'printf "starting\\n" >&2; printf "rea"; sleep 0.3; printf "dy on port 7\\n"; sleep 30',
    )
    const read: Buffer[] = []
    server.stdout.on('data', (chunk: Buffer) => read.push(chunk))
    expect(await server.waitForOutput(/ready on port \d+/)).toBe('ready on port 7')
    expect(Buffer.concat(read).toString()).toBe('ready on port 7\n') // the reader still got it all
    // Printed before the call: found in what the process kept (its last 4 KiB).
    expect(await server.waitForOutput('starting', { stream: 'stderr' })).toBe('starting')
    const onlyStdout = await server
      .waitForOutput('starting', { stream: 'stdout', timeoutMs: 300 })
      .catch((e) => e)
    expect(onlyStdout).toBeInstanceOf(OutputWaitTimeoutError)
    expect((onlyStdout as Error).message).toMatch(
      /^the output of printf .* in VM \S+ did not match \/starting\/ within 300 ms\. Fix: .*\n--- stderr \(its end\) ---\nstarting\n--- stdout \(its end\) ---\nready on port 7$/s,
    )
    server.kill('SIGKILL')
    await server.wait()
  })

  test('a process that ends first, even with 0, ends the wait at once with its output', async () => {
    const error = await vm
      .spawn('echo "listening failed: no config"; exit 0')
      .waitForOutput(/ready/)
      .catch((e) => e)
    expect(error).toBeInstanceOf(ExecError)
    expect((error as ExecError).message).toMatch(
      /^Command exited with code 0 in VM \S+ before its output matched \/ready\/: echo .*\n--- stdout ---\nlistening failed: no config$/,
    )
  })
})
