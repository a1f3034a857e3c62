import { execFile, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { release, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { runtimeDir } from '@vmctl/core'
import { describe, expect, test, vi } from 'vitest'

const CLI = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const run = promisify(execFile)

async function vmctl(
  args: string[],
  input?: string,
  extraEnv: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // As a user's shell runs it: outside this run's shared keeper, which would hold a network
    // made by `vmctl up --network` until the run ends.
    const env = { ...process.env, VMCTL_SHARED_KEEPER: undefined, ...extraEnv }
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d))
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    if (input !== undefined) child.stdin.end(input)
    else child.stdin.end()
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

/** What a connection to 127.0.0.1:`port` reads up to its first newline. */
function readTcp(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      text += chunk
      if (text.includes('\n')) socket.destroy()
    })
    socket.on('close', () => resolve(text))
    socket.on('error', reject)
  })
}

/** Pids of QEMU processes whose command line names `text` (a VM's sockets are in its directory). */
function qemuProcessesNaming(text: string): number[] {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')
      if (argv[0]?.includes('qemu') && argv.some((arg) => arg.includes(`/${text}/`))) pids.push(Number(entry))
    } catch {} // gone meanwhile
  }
  return pids
}

/** Pids of processes whose command line starts with `title` (a supervisor sets its title). */
function processesNaming(title: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        return readFileSync(`/proc/${entry}/cmdline`, 'utf8').startsWith(title)
      } catch {
        return false // gone meanwhile
      }
    })
    .map(Number)
}

describe('vmctl usage errors', () => {
  test('a bad flag is a one-line error and exit code 2', async () => {
    const result = await vmctl(['run', '--no-such-flag', '--', 'true'])
    expect(result.code).toBe(2)
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
    expect(result.stderr).toContain("Unknown option '--no-such-flag'")
  })

  test('a run that boots nothing leaves no supervisor: the one started early exits', async () => {
    // The supervisor that `vmctl run` starts before it loads (early-supervisor.ts) has this
    // process's environment: found by a marker in it, as nothing else names it yet.
    const marker = `VMCTL_TEST_MARK=early-${process.pid}-${Date.now()}`
    const [key, value] = marker.split('=') as [string, string]
    const withMarker = () =>
      readdirSync('/proc').filter((entry) => {
        try {
          return (
            /^\d+$/.test(entry) && readFileSync(`/proc/${entry}/environ`, 'latin1').includes(`${marker}\0`)
          )
        } catch {
          return false
        }
      })
    expect((await vmctl(['run', '--no-such-flag', '--', 'true'], undefined, { [key]: value })).code).toBe(2)
    expect((await vmctl(['run', '--'], undefined, { [key]: value })).code).toBe(2)
    await vi.waitFor(() => expect(withMarker()).toEqual([]), { timeout: 5_000, interval: 50 })
  })

  test('an unknown command and an unknown VM name exit 2', async () => {
    expect((await vmctl(['frobnicate'])).code).toBe(2)
    const missing = await vmctl(['exec', 'no-such-vm', '--', 'true'])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('no VM named "no-such-vm"')
    expect((await vmctl(['down', 'no-such-vm'])).code).toBe(2)
  })

  test('every command has --help', async () => {
    for (const command of [
      'run',
      'up',
      'exec',
      'shell',
      'cp',
      'logs',
      'wait',
      'forward',
      'down',
      'ps',
      'template',
      'kernel',
      'vmtest',
    ]) {
      const result = await vmctl([command, '--help'])
      expect(result.code).toBe(0)
      expect(result.stdout).toContain(`Usage: vmctl ${command}`)
    }
    expect((await vmctl(['--help'])).stdout).toContain('Commands:')
  })
})

describe('vmctl template', () => {
  test('ls lists templates with their size on disk; prune needs a known action; VMs use them', async () => {
    expect((await vmctl(['template', 'frobnicate'])).code).toBe(2)
    const booted = await vmctl(['run', '--', 'true'])
    expect(booted.code).toBe(0)
    const listed = await vmctl(['template', 'ls', '--json'])
    expect(listed.code).toBe(0)
    const templates = JSON.parse(listed.stdout) as Array<{ key: string; bytes: number; valid: boolean }>
    expect(templates.some((t) => t.valid && t.bytes > 10_000_000)).toBe(true)
    const table = await vmctl(['template', 'ls'])
    expect(table.stdout).toMatch(/^KEY\s+SIZE\s+CREATED\s+LAST USED\s+DEFINITION/)
    expect(table.stdout).toMatch(/template\(s\), [\d.]+ MB on disk of a 5368.7 MB budget/)
  })
})

describe('vm: vmctl against real VMs', () => {
  test('vmctl run prints the guest output, exits with the guest exit code, and leaves no QEMU or VM directory', async () => {
    const timeline = join(mkdtempSync(join(tmpdir(), 'vmctl-cli-timeline-')), 'timeline.jsonl')
    const result = await vmctl(
      ['run', '--', 'uname -r; echo to-stderr >&2; echo "name=$(hostname)" >&2; exit 7'],
      undefined,
      { VMCTL_TIMELINE_FILE: timeline },
    )
    expect(result.code).toBe(7)
    // The clone's QEMU was the one planned by the CLI and started as the supervisor's first act
    // (early-qemu.ts): the template exists (made by the test above).
    const stamps = readFileSync(timeline, 'utf8')
    expect(stamps).toContain('qemu adopted (spawned early)')
    // And its supervisor was the one the CLI started as its first act (early-supervisor.ts).
    expect(stamps).toContain('supervisor: launch received (started early)')
    expect(result.stdout.trim()).not.toBe(release())
    expect(result.stdout).toMatch(/^\d+\.\d+\S*\n$/)
    expect(result.stderr).toContain('to-stderr')
    // The guest's hostname is the VM's name. vmctl exits once its VM's supervisor has taken the
    // teardown in hand; within seconds of that, nothing of the VM is left: no QEMU, no directory
    // (with its sockets), no supervisor.
    const name = result.stderr.match(/^name=(\S+)$/m)?.[1]
    expect(name, result.stderr).toBeTruthy()
    const leftovers = () => [
      ...(existsSync(join(runtimeDir(), 'vms', name!)) ? ['its VM directory'] : []),
      ...qemuProcessesNaming(name!).map((pid) => `QEMU ${pid}`),
      ...processesNaming(`vmctl-supervisor ${name}`).map((pid) => `supervisor ${pid}`),
    ]
    await vi.waitFor(() => expect(leftovers()).toEqual([]), { timeout: 5_000, interval: 50 })
    // vmctl exits without waiting for the destroy's answer: the request still got out (the
    // supervisor ended the VM on it, not on the close of its creator's connection).
    expect(readFileSync(timeline, 'utf8')).toContain('supervisor: shutting down (destroyed on request)')
    rmSync(dirname(timeline), { recursive: true, force: true })
  })

  test('vmctl run on a network waits for its teardown to begin: a second run takes the same host name at once', async () => {
    const network = `cli-run-net-${process.pid}`
    for (const round of [1, 2]) {
      const result = await vmctl(['run', '--network', `${network}:db`, '--', 'getent hosts db'])
      expect(result.code, `round ${round}: ${result.stderr}`).toBe(0)
      expect(result.stdout).toMatch(/^10\.213\.\d+\.\d+\s+db/)
    }
  })

  test('vmctl run into a pipe whose reader is slow: every byte arrives before vmctl exits', async () => {
    // As `vmctl run -- dmesg | less`: the reader takes the first screen, then waits. vmctl used to
    // exit with the rest of the output still queued for the pipe.
    const child = spawn(process.execPath, [CLI, 'run', '--', 'head -c 1000000 /dev/zero; echo TAIL'], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, VMCTL_SHARED_KEEPER: undefined },
    })
    const chunks: Buffer[] = []
    child.stdout.once('data', (chunk: Buffer) => {
      chunks.push(chunk)
      child.stdout.pause()
      setTimeout(() => child.stdout.on('data', (more: Buffer) => chunks.push(more)).resume(), 2_000)
    })
    const [code] = await Promise.all([
      new Promise((resolve) => child.on('exit', resolve)),
      new Promise((resolve) => child.stdout.on('end', resolve)),
    ])
    expect(code).toBe(0)
    const output = Buffer.concat(chunks)
    expect(output.length).toBe(1_000_005)
    expect(output.subarray(-5).toString()).toBe('TAIL\n')
  })

  test('a client that connects while the VM is still booting waits for it instead of failing or hanging', async () => {
    const name = `early-${process.pid}`
    const up = vmctl(['up', '--name', name])
    const started = Date.now()
    while (!existsSync(join(runtimeDir(), 'vms', name, 'control.sock')) && Date.now() - started < 30_000) {
      await new Promise((r) => setTimeout(r, 20))
    }
    const early = await vmctl(['exec', name, '--', 'echo', 'early bird'])
    expect(early).toMatchObject({ code: 0, stdout: 'early bird\n' })
    expect((await up).code).toBe(0)
    expect((await vmctl(['down', name])).code).toBe(0)
  })

  test('vmctl up / exec / ps / down from separate processes', async () => {
    const name = `cli-${process.pid}`
    // On a network of its own, by name: made by this up, ended with the VM.
    const network = `cli-net-${process.pid}`
    const up = await vmctl(['up', '--name', name, '--network', `${network}:web,www`])
    expect(up.code, up.stderr).toBe(0)
    expect(up.stdout.trim()).toBe(name)
    try {
      // What the run test's check for a leftover QEMU looks for finds a running VM's.
      expect(qemuProcessesNaming(name)).toHaveLength(1)
      const ps = await run(process.execPath, [CLI, 'ps'])
      expect(ps.stdout).toMatch(new RegExp(`^${name}\\s+ready\\s+\\d+s\\s+\\d+`, 'm'))
      const ip = ps.stdout.match(new RegExp(`^${name}\\s.*\\b${network}=(10\\.213\\.\\d+\\.10)\\b`, 'm'))?.[1]
      expect(ip, ps.stdout).toBeTruthy()
      expect((await vmctl(['exec', name, '--', 'getent hosts www'])).stdout).toContain(`${ip} `)
      // Two clients at once, from two processes.
      const [a, b] = await Promise.all([
        vmctl(['exec', name, '--', 'echo a; hostname']),
        vmctl(['exec', name, '--', 'sh', '-c', 'echo b; exit 3']),
      ])
      expect(a).toMatchObject({ code: 0, stdout: `a\n${name}\n` })
      expect(b).toMatchObject({ code: 3, stdout: 'b\n' })
      const stdin = await vmctl(['exec', name, '--', 'wc -c'], 'twelve bytes')
      expect(stdin.stdout.trim()).toBe('12')
      // A server started in the background by one exec, waited for by vmctl wait.
      const server = await vmctl([
        'exec',
        name,
        '--',
        'sh -c "(sleep 0.5; exec busybox nc -l -p 8090) >/dev/null 2>&1 &"',
      ])
      expect(server.code).toBe(0)
      expect((await vmctl(['wait', name, '--port', '8090'])).code).toBe(0)
      expect((await vmctl(['wait', name, '--command', 'test -e /tmp/never', '--timeout', '1'])).code).toBe(1)
      expect((await vmctl(['wait', name, '-p', '8090', '-c', 'true'])).code).toBe(0)
      const nothing = await vmctl(['wait', name, '-p', '8090', '-p', '8091', '--timeout', '0.5'])
      expect(nothing.code).toBe(1)
      expect(nothing.stderr).toMatch(
        /vmctl: nothing listened on TCP port 8091 in VM \S+ within \d+ ms \(listening: .*\[::\]:8090/,
      )
      // A guest port forwarded from the host after the boot: vmctl forward prints the host port.
      const greeter = await vmctl([
        'exec',
        name,
        '--',
        'sh -c "(echo hi-from-guest | busybox nc -l -p 8092) >/dev/null 2>&1 &"',
      ])
      expect(greeter.code).toBe(0)
      expect((await vmctl(['wait', name, '--port', '8092'])).code).toBe(0)
      const forwarded = await vmctl(['forward', name, '8092'])
      expect(forwarded.code, forwarded.stderr).toBe(0)
      const hostPort = Number(forwarded.stdout.trim())
      expect(Number.isInteger(hostPort) && hostPort > 0, forwarded.stdout).toBe(true)
      expect(await readTcp(hostPort)).toBe('hi-from-guest\n')
      expect((await vmctl(['forward', name, '8092'])).stdout.trim()).toBe(String(hostPort))
      const udp = await vmctl(['forward', name, '8092/udp'])
      expect(udp.stdout.trim()).toMatch(/^\d+$/)
      expect(udp.stdout.trim()).not.toBe(String(hostPort))
      const badPort = await vmctl(['forward', name, '80000'])
      expect(badPort.code).toBe(2)
      expect(badPort.stderr.trimEnd().split('\n').at(-1)).toBe(
        'vmctl: vmctl forward: GUEST_PORT is a port number (1-65535), with /udp for UDP (53/udp), got "80000"',
      )
      // On a terminal in the guest (-t): from a pipe (its end is the terminal's Ctrl-D), and from a
      // terminal (script(1) gives vmctl one), whose size the guest's terminal takes.
      const piped = await vmctl(['exec', '-t', name, '--', 'tty; read x; echo "got $x"'], 'typed\n')
      expect(piped.code, piped.stderr).toBe(0)
      expect(piped.stdout).toMatch(/^\/dev\/pts\/\d+\r$/m)
      expect(piped.stdout).toContain('got typed\r\n')
      const onTerminal = await run('script', [
        '-qec',
        `stty rows 33 cols 111; ${process.execPath} ${CLI} exec -t ${name} -- sh -c 'stty size; exit 3'; echo "vmctl exited $?"`,
        '/dev/null',
      ])
      expect(onTerminal.stdout).toContain('33 111')
      expect(onTerminal.stdout).toContain('vmctl exited 3')
      // Files both ways (vmctl cp), into existing directories under their own names, and the logs.
      const local = mkdtempSync(join(tmpdir(), 'vmctl-cli-cp-'))
      try {
        mkdirSync(join(local, 'tree/sub'), { recursive: true })
        writeFileSync(join(local, 'tree/sub/b.txt'), 'B\n')
        writeFileSync(join(local, 'tree/a.sh'), '#!/bin/sh\necho ran\n', { mode: 0o755 })
        expect((await vmctl(['cp', join(local, 'tree'), `${name}:/tmp/t`])).code).toBe(0)
        expect((await vmctl(['exec', name, '--', 'cat /tmp/t/sub/b.txt; /tmp/t/a.sh'])).stdout).toBe(
          'B\nran\n',
        )
        mkdirSync(join(local, 'back'))
        expect((await vmctl(['cp', `${name}:/tmp/t`, join(local, 'back')])).code).toBe(0)
        expect(readFileSync(join(local, 'back/t/sub/b.txt'), 'utf8')).toBe('B\n')
        expect((await vmctl(['cp', `${name}:/etc/hostname`, '-'])).stdout).toBe(`${name}\n`)
        expect((await vmctl(['cp', '-', `${name}:/tmp/in.txt`], 'from stdin')).code).toBe(0)
        expect((await vmctl(['exec', name, '--', 'cat /tmp/in.txt'])).stdout).toBe('from stdin')
        const missing = await vmctl(['cp', `${name}:/no/such/file`, join(local, 'x')])
        expect(missing.stderr).toContain('cannot read /no/such/file: no such file or directory in the guest')
        expect((await vmctl(['cp', join(local, 'tree'), join(local, 'elsewhere')])).code).toBe(2)
      } finally {
        rmSync(local, { recursive: true, force: true })
      }
      const logs = await vmctl(['logs', name, '--source', 'kernel'])
      expect(logs.stdout).toMatch(/^kernel {2}Linux version /m)
      expect((await vmctl(['logs', name, '-s', 'console'])).stdout).toMatch(/^console vmctl-init: /m)
      const state = await vmctl(['exec', name, '--', 'echo persisted > /root/state'])
      expect(state.code).toBe(0)
      expect((await vmctl(['exec', name, '--', 'cat /root/state'])).stdout).toBe('persisted\n')
      // Bad input exits 2 with one line naming the cause and the fix.
      const again = await vmctl(['up', '--name', name])
      expect(again.code).toBe(2)
      // The last line: a host without usable KVM adds its notice before it.
      expect(again.stderr.trimEnd().split('\n').at(-1)).toBe(
        `vmctl: a VM named "${name}" is already running or starting; pick another name or run: vmctl down ${name}`,
      )
      const noDir = await vmctl(['exec', name, '--cwd', '/no/such/dir', '--', 'true'])
      expect(noDir.code).toBe(2)
      expect(noDir.stderr.trimEnd().split('\n').at(-1)).toBe(
        `vmctl: VM ${name}: the working directory /no/such/dir does not exist in the guest. Fix: create it first (mkdir -p /no/such/dir) or pass another cwd`,
      )
    } finally {
      const down = await vmctl(['down', name])
      expect(down.code, down.stderr).toBe(0)
    }
    const after = await run(process.execPath, [CLI, 'ps'])
    expect(after.stdout).not.toContain(name)
    // The switch ends with its last member (it sees the VM's control socket close).
    await vi.waitFor(() => expect(existsSync(join(runtimeDir(), 'networks', network))).toBe(false), {
      timeout: 10_000,
      interval: 100,
    })
    expect((await vmctl(['exec', name, '--', 'true'])).code).toBe(2)
  })
})
