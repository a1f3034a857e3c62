import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { existsSync, rmSync } from 'node:fs'
import net from 'node:net'
import { release } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest'
import { ExecError, VM } from '../index.js'
import { VmDirectory } from '../supervisor/vm-directory.js'
import { pollUntil } from '../util/timing.js'

// One VM for the read-mostly checks: each test would otherwise pay a cold boot under TCG.
describe('vm: exec in a real VM', () => {
  let vm: VM
  beforeAll(async () => {
    vm = await VM.up({ ports: [8080], env: { VMCTL_TEST_VM_ENV: 'from-vm-options' } })
  })
  afterAll(async () => {
    await vm?.destroy()
  })

  test('exit codes 0, 1, 7 and 255 come back as they are', async () => {
    for (const code of [0, 1, 7, 255]) {
      const result = await vm.exec(`exit ${code}`, { reject: false })
      expect(result.exitCode).toBe(code)
      expect(result.failed).toBe(code !== 0)
      expect(result.signal).toBeUndefined()
    }
  })

  test('a non-zero exit rejects with an ExecError carrying the result', async () => {
    const error = await vm.exec('echo out; echo oops >&2; exit 3').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ExecError)
    const execError = error as ExecError
    expect(execError.exitCode).toBe(3)
    expect(execError.stdout).toBe('out\n')
    expect(execError.stderr).toBe('oops\n')
    expect(execError.message).toContain('exit code 3')
    expect(execError.message).toContain('oops')
  })

  test('a process killed by a signal reports the signal', async () => {
    const result = await vm.exec(['sh', '-c', 'kill -KILL $$'], { reject: false })
    expect(result.signal).toBe('SIGKILL')
    expect(result.exitCode).toBeUndefined()
    expect(result.failed).toBe(true)
  })

  test('stdout and stderr are kept apart', async () => {
    const result = await vm.exec('echo to-out; echo to-err >&2; echo more-out')
    expect(result.stdout).toBe('to-out\nmore-out\n')
    expect(result.stderr).toBe('to-err\n')
  })

  test('argv is passed without a shell', async () => {
    const result = await vm.exec(['printf', '%s|', 'a b', '$HOME', "it's"])
    expect(result.stdout).toBe("a b|$HOME|it's|")
  })

  test('10 MB of output arrives intact', async () => {
    const result = await vm.exec(
      'seq 1 2000000 | head -c 10485760; seq 1 2000000 | head -c 10485760 | sha256sum >&2',
    )
    expect(result.stdout.length).toBe(10 * 1024 * 1024)
    const guestDigest = result.stderr.split(' ')[0]
    expect(createHash('sha256').update(result.stdout).digest('hex')).toBe(guestDigest)
  })

  test('stdin reaches the command', async () => {
    const input = `${'line of input\n'.repeat(20_000)}end`
    const result = await vm.exec('cat > /tmp/in; wc -c < /tmp/in; tail -c 3 /tmp/in', { input })
    expect(result.stdout).toBe(`${Buffer.byteLength(input)}\nend`)
  })

  test('env and cwd apply', async () => {
    const result = await vm.exec('echo "$GREETING $VMCTL_TEST_VM_ENV"; pwd', {
      env: { GREETING: 'hello' },
      cwd: '/usr/share',
    })
    expect(result.stdout).toBe('hello from-vm-options\n/usr/share\n')
  })

  test('a timeout kills the guest process', async () => {
    const started = Date.now()
    const result = await vm.exec('sleep 30; echo not-reached', { timeoutMs: 700, reject: false })
    expect(result.timedOut).toBe(true)
    expect(result.stdout).toBe('')
    expect(Date.now() - started).toBeLessThan(20_000)
    const left = await vm.exec('ps -eo args | grep -c "[s]leep 30"', { reject: false })
    expect(left.stdout.trim()).toBe('0')
  })

  test('the guest runs its own kernel, as root', async () => {
    const kernel = await vm.exec('uname -r')
    expect(kernel.stdout.trim()).not.toBe(release())
    expect(kernel.stdout.trim()).toMatch(/^\d+\.\d+/)
    const id = await vm.exec('id -u')
    expect(id.stdout.trim()).toBe('0')
  })

  test('the guest has a working kernel feature set: namespaces, cgroups, a bridge', async () => {
    const result = await vm.exec(
      'ip link add br0 type bridge && ip -br link show br0 && test -f /sys/fs/cgroup/cgroup.controllers && unshare -n true && echo ok',
    )
    expect(result.stdout).toContain('br0')
    expect(result.stdout).toContain('ok')
  })

  test('a file written in the guest does not appear on the host', async () => {
    const path = join(process.cwd(), `.vmctl-guest-write-${process.pid}`)
    rmSync(path, { force: true })
    await vm.exec(`echo guest > ${path} && cat ${path}`)
    expect(existsSync(path)).toBe(false)
  })

  test('a forwarded port reaches a server started in the guest', async () => {
    const hostPort = vm.forwardedPort(8080)
    expect(hostPort).toBeGreaterThan(0)
    await vm.exec(
      `mkdir -p /srv/www && echo hello-from-guest > /srv/www/index.html && cd /srv/www && setsid busybox httpd -p 8080 -h /srv/www`,
    )
    let body = ''
    const deadline = Date.now() + 30_000
    while (Date.now() < deadline) {
      try {
        const response = await fetch(`http://127.0.0.1:${hostPort}/index.html`)
        body = await response.text()
        if (response.ok) break
      } catch {}
      await new Promise((r) => setTimeout(r, 200))
    }
    expect(body).toBe('hello-from-guest\n')
    expect(() => vm.forwardedPort(9999)).toThrow(/not forwarded/)
  })

  test('a command that leaves a background child holding stdout still returns', async () => {
    const started = Date.now()
    const result = await vm.exec('sleep 300 & echo started')
    expect(result.stdout).toBe('started\n')
    expect(Date.now() - started).toBeLessThan(15_000)
    await vm.exec('pkill -f "sleep 300"', { reject: false })
  })

  test('warnings are data: vm.warnings says why the VM runs under TCG; a handle prints nothing', async () => {
    const slow = vm.warnings.filter((warning) => warning.startsWith('KVM is not usable'))
    const asked = /tcg/.test(process.env.VMCTL_ACCEL ?? '')
    expect(slow).toHaveLength(vm.accel === 'tcg' && !asked ? 1 : 0)
    const write = vi.spyOn(process.stderr, 'write')
    try {
      const attached = await VM.attach(vm.name)
      expect(attached.warnings).toEqual(vm.warnings)
      await attached.close()
      expect(write).not.toHaveBeenCalled()
    } finally {
      write.mockRestore()
    }
  })

  test("garbage on the VM's control socket is answered or dropped; the VM runs on", async () => {
    // Any process of the user can write there; a `null` once threw inside the supervisor and ended it.
    const socket = net.connect(new VmDirectory(vm.name).controlSocket)
    await once(socket, 'connect')
    let answers = ''
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      answers += chunk
    })
    socket.write('null\n7\n[]\n"status"\n{"op":"no-such-op"}\n')
    await pollUntil(() => answers.includes('\n'), { timeoutMs: 5_000, everyMs: 20 })
    socket.end()
    expect(JSON.parse(answers.split('\n')[0]!)).toEqual({ reply: 'error', message: 'unknown op no-such-op' })
    expect((await vm.exec('echo ok')).stdout).toBe('ok\n')
  })

  test('100 concurrent execs all get their own output', async () => {
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => vm.exec(['echo', `n${i}`])))
    for (const [i, result] of results.entries()) expect(result.stdout).toBe(`n${i}\n`)
  })

  test("a bare command name runs the root's binary, not busybox's applet", async () => {
    expect((await vm.exec(['ls', '--version'])).stdout).toContain('GNU coreutils')
    const missing = await vm.exec(['no-such-command-xyz'], { reject: false })
    expect([missing.exitCode, missing.stderr]).toEqual([
      127,
      expect.stringContaining('not found in the guest'),
    ])
  })

  test('commands start from the spawner, with pipes: a script can open /dev/stdin', async () => {
    const result = await vm.exec('cat /dev/stdin; cat /proc/$PPID/comm; readlink /proc/self/fd/1', {
      input: 'piped\n',
    })
    expect(result.stdout).toMatch(/^piped\nvmctl-spawner\npipe:\[\d+\]\n$/)
  })

  // Last in this file: the VM goes on without its spawner.
  test('once the spawner is gone, commands start through child_process', async () => {
    await vm.exec('p=$PPID; (sleep 0.3; kill -KILL $p) >/dev/null 2>&1 &')
    const parent = () => vm.exec('cat /proc/$PPID/comm').then((r) => r.stdout.trim())
    const after = await pollUntil(async () => (await parent()).replace(/^vmctl-spawner$/, '') || undefined, {
      timeoutMs: 20_000,
      everyMs: 200,
    })
    expect(after).toBe('vmctl-agent')
    const result = await vm.exec('cat; exit 4', { input: 'still\n', reject: false })
    expect([result.stdout, result.exitCode]).toEqual(['still\n', 4])
  })
})
