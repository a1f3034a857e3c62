import { constants as bufferConstants } from 'node:buffer'
import { createHash, randomBytes } from 'node:crypto'
import {
  createReadStream,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { AgentError, FileTooLargeError, VM, VmExitedError } from '../index.js'
import { eventually, vmDirectoryExists } from '../test-support/vm-processes.js'
import { sleep } from '../util/timing.js'

/** A raw Exec call's start message (for tests that drive the call themselves): as root, in /. */
function startMessage(command: { argv?: string[]; shell?: string }, timeoutMs = 0) {
  const value = { argv: [], shell: '', ...command, env: {}, cwd: '/', user: '', stdin: false, timeoutMs }
  return { kind: { $case: 'start' as const, value: { ...value, noStarted: false } } }
}

describe('vm: the agent API', () => {
  let vm: VM
  const local = mkdtempSync(join(tmpdir(), 'vmctl-files-'))
  beforeAll(async () => {
    vm = await VM.up()
  })
  afterAll(async () => {
    await vm?.destroy()
    rmSync(local, { recursive: true, force: true })
  })

  test('push and pull keep bytes, mode and owner; parents are created', async () => {
    // Five whole chunks and a bit: the guest reads the later ones into buffers it sent already.
    const data = randomBytes(5 * 1024 * 1024 + 17)
    writeFileSync(join(local, 'blob.bin'), data)
    await vm.push(join(local, 'blob.bin'), '/srv/deep/er/blob.bin', { mode: 0o640, owner: 'nobody' })
    const stat = await vm.exec('stat -c "%a %U %s" /srv/deep/er/blob.bin; sha256sum /srv/deep/er/blob.bin')
    const [line, sum] = stat.stdout.split('\n')
    expect(line).toBe(`640 nobody ${data.length}`)
    expect(sum?.split(' ')[0]).toBe(createHash('sha256').update(data).digest('hex'))
    expect((await vm.pull('/srv/deep/er/blob.bin')).equals(data)).toBe(true)
    expect((await vm.exec('ls -a /srv/deep/er')).stdout).not.toContain('.vmctl-push')
  })

  test('writeFile replaces a file atomically; readFile reads text', async () => {
    await vm.writeFile('/etc/vmctl-test.conf', 'first\n')
    await vm.writeFile('/etc/vmctl-test.conf', 'second\n')
    expect(await vm.readFile('/etc/vmctl-test.conf')).toBe('second\n')
    const inode = await vm.exec('stat -c %i /etc/vmctl-test.conf')
    await vm.writeFile('/etc/vmctl-test.conf', 'third\n')
    expect((await vm.exec('stat -c %i /etc/vmctl-test.conf')).stdout).not.toBe(inode.stdout)
  })

  test('a missing file is NOT_FOUND naming the path; a missing parent without parents too', async () => {
    const missing = await vm.pull('/no/such/file.txt').catch((e: unknown) => e)
    expect(missing).toBeInstanceOf(AgentError)
    expect((missing as AgentError).grpcCode).toBe('NOT_FOUND')
    expect((missing as Error).message).toContain('/no/such/file.txt')
    const noParent = await vm.writeFile('/no/such/dir/f', 'x', { parents: false }).catch((e: unknown) => e)
    expect((noParent as AgentError).grpcCode).toBe('NOT_FOUND')
    expect((noParent as Error).message).toMatch(/parents: true/)
    // A directory is refused before any byte; a file that fails mid-read names its path and cause.
    const directory = await vm.pull('/etc').catch((e: unknown) => e)
    expect((directory as AgentError).grpcCode).toBe('FAILED_PRECONDITION')
    expect((directory as Error).message).toMatch(
      /\/etc is a directory in the guest: pull it with copyDirFrom/,
    )
    const unreadable = await vm.pull('/proc/self/mem').catch((e: unknown) => e)
    expect(unreadable).toBeInstanceOf(AgentError)
    expect((unreadable as Error).message).toMatch(/cannot read \/proc\/self\/mem: .*(EIO|i\/o error)/i)
  })

  test('a file larger than a string (readFile) or a Buffer (pull) holds is refused from its size', async () => {
    // Sparse: nothing is written, and a refusal reads nothing (600 MB would take ~10 s to cross).
    await vm.exec('truncate -s 600M /tmp/big-text')
    const error = await vm.readFile('/tmp/big-text').catch((e) => e)
    expect(error).toBeInstanceOf(FileTooLargeError)
    expect((error as Error).message).toMatch(
      /^\/tmp\/big-text in VM \S+ is 629145600 bytes, more than a string holds in this Node \(\d+\)\. Fix: vm\.pullTo\(path, localPath\) streams it to a host file, or vm\.readFile\(path, 'buffer'\) gives its bytes\.$/,
    )
    if (bufferConstants.MAX_LENGTH < 2 ** 40) {
      // Node 20: 4 GiB (later Nodes hold far more than a guest disk).
      await vm.exec(`truncate -s ${bufferConstants.MAX_LENGTH + 1} /tmp/big-text`)
      await expect(vm.pull('/tmp/big-text')).rejects.toThrow(/more than a Buffer holds in this Node/)
    }
    await vm.exec('rm /tmp/big-text')
    expect(await vm.readFile('/proc/sys/kernel/ostype')).toBe('Linux\n') // the agent serves on
  })

  test('directories copy both ways, with nested files and symlinks', async () => {
    const tree = join(local, 'tree')
    mkdirSync(join(tree, 'a/b'), { recursive: true })
    writeFileSync(join(tree, 'a/b/c.txt'), 'deep')
    writeFileSync(join(tree, 'top.txt'), 'top')
    symlinkSync('a/b/c.txt', join(tree, 'link'))
    await vm.copyDirTo(tree, '/opt/tree')
    expect((await vm.exec('cd /opt/tree && find . | sort && cat link')).stdout).toBe(
      '.\n./a\n./a/b\n./a/b/c.txt\n./link\n./top.txt\ndeep',
    )
    await vm.exec('echo made-in-guest > /opt/tree/guest.txt')
    const back = join(local, 'back')
    await vm.copyDirFrom('/opt/tree', back)
    expect(readFileSync(join(back, 'guest.txt'), 'utf8')).toBe('made-in-guest\n')
    expect(readFileSync(join(back, 'a/b/c.txt'), 'utf8')).toBe('deep')
    expect(readlinkSync(join(back, 'link'))).toBe('a/b/c.txt')
    await expect(vm.pull('/opt/tree')).rejects.toThrow(/is a directory/)
  })

  test('binary output is preserved with encoding buffer', async () => {
    const result = await vm.exec(
      "printf '\\000\\001\\377\\376'; head -c 256 /dev/zero | tr '\\000' '\\200'",
      { encoding: 'buffer' },
    )
    expect(result.stdout.subarray(0, 4)).toEqual(Buffer.from([0, 1, 255, 254]))
    expect(result.stdout.length).toBe(260)
    expect(result.stdout[100]).toBe(0x80)
  })

  test('exec resolves only once a slow stdout target was handed all the output, and its result is whole', async () => {
    // The first chunk is held for 1 s: the command and its exit are done long before, so an exec
    // that resolved on the exit alone had only what was relayed so far.
    let written = 0
    const slow = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _encoding, callback) {
        written += chunk.length
        setTimeout(callback, written === chunk.length ? 1_000 : 2)
      },
    })
    const result = await vm.exec('head -c 1000000 /dev/zero; echo TAIL', { stdout: slow, encoding: 'buffer' })
    expect(result.stdout.length).toBe(1_000_005)
    expect(result.stdout.subarray(-5).toString()).toBe('TAIL\n')
    // Handed over: written, or queued in the target (writableLength also counts the chunk in write()).
    expect(written + slow.writableLength).toBeGreaterThanOrEqual(1_000_005)
  })

  test('a command that exited in time is not reported as timed out while its output drains to a slow reader', async () => {
    const { agentClient } = await import('./agent-client.js')
    const { VmDirectory } = await import('../supervisor/vm-directory.js')
    const { Metadata } = await import('@grpc/grpc-js')
    // More than the call's window (4 MiB on the lane), less than what the command can write with
    // nothing read (5.47 MiB measured: the window, the relay's 1 MiB, the pipe, the channel's
    // queue): it writes it all and exits while the agent still holds the rest.
    const size = 4.5 * 1024 * 1024
    // Long: on this loaded host one run wrote less than this in 8 s, another 5.47 MiB in 1.5 s.
    const timeoutMs = 15_000
    const agent = agentClient(new VmDirectory(vm.name))
    try {
      const call = agent.exec(new Metadata(), {})
      let received = 0
      let exit: unknown
      call.on('data', (response: { kind?: { $case: string; value: { length: number } } }) => {
        if (response.kind?.$case === 'stdout') received += response.kind.value.length
        if (response.kind?.$case === 'exit') exit = response.kind.value
      })
      const ended = new Promise((resolve) => call.on('end', resolve).on('error', resolve))
      call.pause()
      // The guest's clock says when it exited (an exec to look costs seconds on a loaded host).
      const shell = `rm -f /tmp/drain-end; date +%s%N > /tmp/drain-start; head -c ${size} /dev/zero; date +%s%N > /tmp/drain-end`
      call.write(startMessage({ shell }, timeoutMs))
      // Past its timeout with the output still held back: then read it all.
      await sleep(timeoutMs + 1_000)
      call.resume()
      await ended
      const times = await vm.exec('cat /tmp/drain-start /tmp/drain-end', { reject: false })
      expect(times.exitCode, 'the command finished (else it was still running at its timeout)').toBe(0)
      const [startNs, endNs] = times.stdout.split('\n').map(BigInt)
      expect(Number((endNs! - startNs!) / 1_000_000n), 'ms the command ran').toBeLessThan(timeoutMs)
      expect(received).toBe(size)
      // Before the fix: timedOut true (the timer went on after the exit, and SIGKILLed a gone group).
      expect(exit).toMatchObject({ exitCode: 0, signal: '', timedOut: false })
    } finally {
      agent.close()
    }
  })

  test('a background child that keeps writing after the command exited is still ended, by the timeout at the latest', async () => {
    // The timeout goes on after the exit only to end what is left in the command's group: had it
    // stopped at the exit, `yes` (never quiet, so never cut by the 500 ms grace) ran for good.
    const started = performance.now()
    const outcome = await vm.exec('yes & exit 0', { timeoutMs: 1_500, buffer: false }).then(
      (result) => `exit ${result.exitCode}`,
      (error: Error) => error.message,
    )
    // Mostly the timeout; on a host loaded enough to stall the guest past the grace, the cut.
    expect(outcome).toMatch(/timed out after|^exit 0$/)
    expect(performance.now() - started).toBeLessThan(30_000)
    expect((await vm.exec('pgrep -x yes', { reject: false })).exitCode).toBe(1)
  })

  test('a call cancelled while its output is held back leaves nothing of it in the guest', async () => {
    const { agentClient } = await import('./agent-client.js')
    const { VmDirectory } = await import('../supervisor/vm-directory.js')
    const { Metadata } = await import('@grpc/grpc-js')
    const { pollUntil } = await import('../util/timing.js')
    const spawnerFds = async () => (await vm.exec('ls /proc/$(pidof vmctl-spawner)/fd | wc -l')).stdout.trim()
    const before = await spawnerFds()
    const agent = agentClient(new VmDirectory(vm.name))
    try {
      const call = agent.exec(new Metadata(), {})
      call.on('error', () => {})
      const shell = 'head -c 64000000 /dev/zero'
      call.write(startMessage({ shell }))
      // Nothing read: the call's window fills and the agent holds the command's output back.
      call.pause()
      await sleep(2_000)
      call.cancel()
      const gone = await pollUntil(
        async () => (await vm.exec('pgrep -f "hea[d] -c 64000000"', { reject: false })).exitCode === 1,
        { timeoutMs: 30_000, everyMs: 100 },
      )
      expect(gone, 'the cancelled command killed').toBe(true)
      // Before the fix the spawner kept the command's stdout pipe (and its slot) for good.
      const closed = await pollUntil(async () => (await spawnerFds()) === before, {
        timeoutMs: 30_000,
        everyMs: 200,
      })
      expect(closed, `the spawner's fds back to ${before} (now ${await spawnerFds()})`).toBe(true)
    } finally {
      agent.close()
    }
  })

  test('an input the command never reads is closed when the command ends (its file is not held open)', async () => {
    // More than the call's flow-control window (4 MiB on the lane): the host's stdin is full when
    // `true` exits, and a feed waiting for a 'drain' of the destroyed stdin kept the input open.
    const file = join(local, 'unread-input.bin')
    writeFileSync(file, Buffer.alloc(24 * 1024 * 1024))
    const input = createReadStream(file)
    expect((await vm.exec(['true'], { input })).exitCode).toBe(0)
    await eventually(() => input.destroyed, 2_000, 'the unread input to be closed')
  })

  test('an input fed faster than the guest reads leaves no listener behind per wait (no leak warning)', async () => {
    const warnings: string[] = []
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`)
    process.on('warning', onWarning)
    try {
      // Twice the call's window (4 MiB on the lane), to a command that reads only after a second:
      // the feed waits for a 'drain' for each 64 KiB chunk past the window (64 waits).
      const input = Buffer.alloc(8 * 1024 * 1024, 0x61)
      const result = await vm.exec('sleep 1; wc -c', { input })
      expect(result.stdout.trim()).toBe(String(input.length))
      await new Promise((resolve) => setImmediate(resolve))
    } finally {
      process.off('warning', onWarning)
    }
    // Before the fix: "MaxListenersExceededWarning: Possible EventEmitter memory leak detected. 11
    // close listeners added to [Writable]".
    expect(warnings.filter((w) => w.includes('MaxListenersExceeded'))).toEqual([])
  })

  test('100 MB of output: nothing lost, nothing reordered', async () => {
    let expected = 1
    let carry = ''
    let bytes = 0
    const checker = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length
        const lines = (carry + chunk.toString('latin1')).split('\n')
        carry = lines.pop()!
        for (const line of lines) {
          if (Number(line) !== expected)
            return callback(new Error(`line ${expected} was ${JSON.stringify(line)}`))
          expected++
        }
        callback()
      },
    })
    const result = await vm.exec('seq 1 13500000', { stdout: checker, buffer: false })
    expect(result.exitCode).toBe(0)
    expect(expected - 1).toBe(13_500_000)
    expect(bytes).toBeGreaterThan(100_000_000)
  }, 300_000)

  test('a background process streams its output live, takes stdin, and can be killed', async () => {
    const ticker = vm.spawn('for i in 1 2 3 4 5 6 7 8 9 10; do echo tick $i; sleep 0.5; done')
    const firstTick = await new Promise<string>((resolve) =>
      ticker.stdout.once('data', (d: Buffer) => resolve(d.toString())),
    )
    expect(firstTick).toContain('tick 1')
    expect(await ticker.pid).toBeGreaterThan(1)
    ticker.kill('SIGTERM')
    const ended = await ticker.wait()
    expect(ended.signal).toBe('SIGTERM')
    expect(ended.durationMs).toBeLessThan(4_500)

    const cat = vm.spawn(['cat'], { stdin: 'pipe' })
    const echoed: Buffer[] = []
    cat.stdout.on('data', (d: Buffer) => echoed.push(d))
    cat.stdin!.end('through stdin')
    expect((await cat.wait()).exitCode).toBe(0)
    expect(Buffer.concat(echoed).toString()).toBe('through stdin')
  })

  test("a background process's output that nobody reads does not stop it; a reader gets every byte", async () => {
    // Both streams written past any buffer, neither read: the process runs to its end. Before, it
    // blocked for good once ~2 MiB waited (a server spawned for a test, its log never looked at).
    const unread = vm.spawn(
      'head -c 8000000 /dev/zero; head -c 8000000 /dev/zero >&2; echo done > /tmp/unread',
    )
    expect((await unread.wait()).exitCode).toBe(0)
    expect((await vm.readFile('/tmp/unread')).trim()).toBe('done')
    // A reader that comes late gets what was kept: the first MiB, then the end.
    let kept = 0
    for await (const chunk of unread.stdout) kept += (chunk as Buffer).length
    expect(kept).toBeGreaterThanOrEqual(1024 * 1024)
    expect(kept).toBeLessThan(1024 * 1024 + 256 * 1024)
    // A reader from the start gets all of stdout while stderr, unread, does not hold it back.
    const read = vm.spawn('head -c 8000000 /dev/zero >&2; head -c 8000000 /dev/zero')
    let bytes = 0
    for await (const chunk of read.stdout) bytes += (chunk as Buffer).length
    expect(bytes).toBe(8_000_000)
    expect((await read.wait()).exitCode).toBe(0)
  })

  test('stdin a process does not read is held back, bounded in the agent, and kill() still ends it', async () => {
    const rss = async () =>
      Number((await vm.exec('grep VmRSS /proc/$(pidof vmctl-agent)/status')).stdout.match(/\d+/)?.[0]) * 1024
    const offered = 24 * 1024 * 1024
    const chunk = Buffer.alloc(1024 * 1024, 0x61)
    const before = await rss()
    const sink = vm.spawn(['sleep', '600'], { stdin: 'pipe' })
    await sink.pid
    // Write until the writes stop being taken, or all of it went. The wait is long enough for a
    // whole window (4 MiB on the lane) to cross the port under load: before the bound the agent
    // took each window and granted the next, for as long as the host wrote (the review pushed
    // 400 MiB into a `sleep`).
    let taken = 0
    while (taken < offered) {
      if (!sink.stdin!.write(chunk)) {
        const drain = new Promise<boolean>((resolve) => sink.stdin!.once('drain', () => resolve(true)))
        if (!(await Promise.race([drain, sleep(10_000).then(() => false)]))) break
      }
      taken += chunk.length
    }
    // The lane's channel window is 4 MiB; the pipe, the streams and a message in flight add a little.
    expect(taken, 'stdin taken while the process reads none').toBeLessThan(12 * 1024 * 1024)
    expect((await rss()) - before, "the agent's RSS grew by").toBeLessThan(32 * 1024 * 1024)
    // The signal does not wait behind the held stdin.
    const killedAt = performance.now()
    sink.kill('SIGKILL')
    const ended = await sink.wait()
    expect(ended.signal).toBe('SIGKILL')
    expect(performance.now() - killedAt, 'kill() with stdin held back').toBeLessThan(5_000)
  })

  test('commands run as another user', async () => {
    const result = await vm.exec('id -un; echo $HOME', { user: 'nobody' })
    expect(result.stdout).toBe('nobody\n/nonexistent\n')
    await expect(vm.exec('true', { user: 'ghost' })).rejects.toThrow(/no user "ghost"/)
    // With the groups the guest's /etc/group gives the user, as su does (postgres gets ssl-cert so).
    await vm.exec("echo 'vmctl-extra:x:4242:daemon,nobody' >> /etc/group")
    try {
      const groups = await vm.exec('id -G', { user: 'nobody' })
      expect(groups.stdout).toBe('65534 4242\n')
      expect((await vm.exec("su -s /bin/sh -c 'id -G' nobody")).stdout).toBe(groups.stdout)
      expect((await vm.exec('id -G', { user: 'nobody:daemon' })).stdout).toBe('1 4242 65534\n')
    } finally {
      await vm.exec("sed -i '/^vmctl-extra:/d' /etc/group")
    }
  })

  test('each way a command starts (the spawner itself, through nsenter, child_process) keeps the same semantics', async () => {
    // vmctl_exec_via picks the path for one call (command-start.ts); unset is the spawner's own.
    for (const [via, parent] of [
      [undefined, 'vmctl-spawner'],
      ['nsenter', 'vmctl-spawner'],
      ['child_process', 'vmctl-agent'],
    ] as const) {
      const env: Record<string, string> = via ? { vmctl_exec_via: via } : {}
      const placed = await vm.exec(
        'id -un; id -G; pwd; echo "$HOME $GREETING"; env | grep -c ^vmctl_exec_via=; cat /proc/$PPID/comm; cat; exit 3',
        { user: 'nobody', cwd: '/usr/share', env: { ...env, GREETING: 'hi' }, input: 'in\n', reject: false },
      )
      expect([via, placed.stdout, placed.exitCode]).toEqual([
        via,
        `nobody\n65534\n/usr/share\n/nonexistent hi\n0\n${parent}\nin\n`,
        3,
      ])
      const asRoot = await vm.exec(['sh', '-c', 'id -u; pwd; ps -o pgid= -p $$; echo $$'], { env })
      const [uid, cwd, group, pid] = asRoot.stdout.trim().split(/\s+/)
      expect([via, uid, cwd, group]).toEqual([via, '0', '/', pid])
      const signalled = await vm.exec(['sh', '-c', 'kill -TERM $$'], { env, reject: false })
      expect([via, signalled.signal]).toEqual([via, 'SIGTERM'])
      const missing = await vm.exec(['no-such-command-xyz'], { env, reject: false })
      expect([via, missing.exitCode, missing.stderr]).toEqual([
        via,
        127,
        expect.stringContaining('"no-such-command-xyz": not found in the guest\'s PATH'),
      ])
      const absent = await vm.exec(['/no/such/binary'], { env, reject: false })
      expect([via, absent.exitCode, absent.stderr]).toEqual([
        via,
        127,
        expect.stringContaining('/no/such/binary'),
      ])
      const notRunnable = await vm.exec(['/etc/hostname'], { env, reject: false })
      expect([via, notRunnable.exitCode]).toEqual([via, 126])
      await expect(vm.exec('true', { env, cwd: '/no/such/dir' })).rejects.toThrow(
        'the working directory /no/such/dir does not exist in the guest',
      )
      await expect(vm.exec('true', { env, cwd: '/etc/hostname' })).rejects.toThrow(
        'the working directory /etc/hostname is not a directory in the guest',
      )
    }
    // A NUL would cut the spawner's request short (and no process can receive one): refused.
    await expect(vm.exec(['echo', 'a\0b'])).rejects.toThrow('argument 1 of the command contains a NUL byte')
    expect((await vm.exec(['echo', 'after'])).stdout).toBe('after\n')
  })

  test('a cwd that does not exist is a call error naming the directory, not the command failing', async () => {
    const started = performance.now()
    const error = await vm.exec('true', { cwd: '/no/such/dir', reject: false }).catch((e: unknown) => e)
    expect(performance.now() - started).toBeLessThan(5_000)
    expect(error).toBeInstanceOf(AgentError)
    expect((error as AgentError).grpcCode).toBe('NOT_FOUND')
    expect((error as Error).message).toBe(
      `VM ${vm.name}: the working directory /no/such/dir does not exist in the guest. Fix: create it first (mkdir -p /no/such/dir) or pass another cwd`,
    )
    await expect(vm.exec('true', { cwd: '/etc/hostname' })).rejects.toThrow(
      'the working directory /etc/hostname is not a directory in the guest',
    )
    expect((await vm.exec('pwd', { cwd: '/etc' })).stdout).toBe('/etc\n')
  })

  test('a push to a read-only or special path names the real cause', async () => {
    const special = await vm.writeFile('/proc/version', 'x').catch((e: unknown) => e)
    expect(special).toBeInstanceOf(AgentError)
    expect((special as Error).message).toContain(
      'cannot write /proc/version: it is not a regular file (/proc is on proc, a kernel interface)',
    )
    await vm.exec('mkdir -p /mnt/ro && mount -t tmpfs -o ro tmpfs /mnt/ro')
    const readOnly = await vm.writeFile('/mnt/ro/file', 'x').catch((e: unknown) => e)
    expect((readOnly as Error).message).toContain(
      'cannot write /mnt/ro/file: it is on a read-only file system',
    )
    expect((readOnly as Error).message).not.toContain('.vmctl-push')
  })

  test('cgroup controllers are enabled for child cgroups, after a cold boot and a restore alike', async () => {
    console.log(
      `cgroup check on a VM ${vm.template ? (vm.template.made ? 'that made its template' : 'restored from a template') : 'cold-booted'}`,
    )
    const result = await vm.exec(
      'mkdir /sys/fs/cgroup/limited && echo 32M > /sys/fs/cgroup/limited/memory.max && cat /sys/fs/cgroup/limited/memory.max; rmdir /sys/fs/cgroup/limited',
    )
    expect(result.stdout).toBe(`${32 * 1024 * 1024}\n`)
    expect((await vm.exec('cat /sys/fs/cgroup/cgroup.subtree_control')).stdout.split(/\s/)).toContain(
      'memory',
    )
  })

  test('a missing binary exits 127 with a message and the agent carries on', async () => {
    const result = await vm.exec(['no-such-binary-xyz', '--flag'], { reject: false })
    expect(result.exitCode).toBe(127)
    expect(result.stderr).toContain('no-such-binary-xyz')
    expect((await vm.exec('echo alive')).stdout).toBe('alive\n')
  })

  test('logs hold the kernel log, the agent log and the console; follow sees new entries', async () => {
    const sources = new Set<string>()
    let sawKernelVersion = false
    for await (const entry of vm.logs()) {
      sources.add(entry.source)
      if (entry.source === 'kernel' && entry.message.startsWith('Linux version')) sawKernelVersion = true
    }
    expect([...sources].sort()).toEqual(['agent', 'console', 'kernel'])
    expect(sawKernelVersion).toBe(true)
    const marker = `vmctl-marker-${Date.now()}`
    const seen = (async () => {
      for await (const entry of vm.logs({ follow: true, sources: ['kernel'] }))
        if (entry.message.includes(marker)) return entry
    })()
    await new Promise((r) => setTimeout(r, 500))
    await vm.exec(`echo ${marker} > /dev/kmsg`)
    expect((await seen)?.source).toBe('kernel')
  })

  test('info describes the guest', async () => {
    const info = await vm.info()
    expect(info.kernelRelease).toMatch(/^\d+\.\d+/)
    expect(info.cpus).toBe(2)
    expect(info.memoryTotalBytes).toBeGreaterThan(500 * 1024 * 1024)
    expect(info.addresses.map((a) => a.address)).toContain('10.0.2.15')
    expect(info.hostname).toBe(vm.name)
  })

  test("info's addresses follow ip addr add and del (the agent keeps them between changes)", async () => {
    const has = async (address: string) =>
      (await vm.info()).addresses.some((a) => a.address === address && a.interface === 'eth0')
    expect(await has('10.77.0.5')).toBe(false)
    await vm.exec('ip addr add 10.77.0.5/24 dev eth0')
    const added = (await vm.info()).addresses.find((a) => a.address === '10.77.0.5')
    expect(added).toMatchObject({ interface: 'eth0', prefix: 24, family: 'IPv4' })
    await vm.exec('ip -6 addr add fd77::5/64 dev eth0 nodad')
    expect((await vm.info()).addresses.find((a) => a.address === 'fd77::5')).toMatchObject({ prefix: 64 })
    await vm.exec('ip addr del 10.77.0.5/24 dev eth0; ip -6 addr del fd77::5/64 dev eth0')
    const after = (await vm.info()).addresses.map((a) => a.address)
    expect(after).not.toContain('10.77.0.5')
    expect(after).not.toContain('fd77::5')
    expect(after).toContain('10.0.2.15')
  })

  test('the call lane and gRPC (VMCTL_AGENT_TRANSPORT=grpc) answer the same calls the same', async () => {
    const seen: Record<string, unknown> = {}
    for (const transport of ['lane', 'grpc']) {
      process.env.VMCTL_AGENT_TRANSPORT = transport
      try {
        await vm.writeFile(`/tmp/${transport}.bin`, Buffer.alloc(2 * 1024 * 1024 + 3, transport))
        const missing = await vm
          .readFile('/no/such/file')
          .catch((e: AgentError) => `${e.grpcCode} ${e.message}`)
        const exec = await vm.exec('echo out; echo err >&2; exit 7', { reject: false })
        seen[transport] = {
          hostname: (await vm.info()).hostname,
          file: (await vm.pull(`/tmp/${transport}.bin`)).toString('latin1', 0, 6),
          size: (await vm.pull(`/tmp/${transport}.bin`)).length,
          missing,
          exec: [exec.exitCode, exec.stdout, exec.stderr],
        }
      } finally {
        delete process.env.VMCTL_AGENT_TRANSPORT
      }
    }
    expect(seen.lane).toMatchObject({
      hostname: vm.name,
      size: 2 * 1024 * 1024 + 3,
      exec: [7, 'out\n', 'err\n'],
    })
    expect({ ...(seen.lane as object), file: '' }).toEqual({ ...(seen.grpc as object), file: '' })
    expect((seen.lane as { missing: string }).missing).toMatch(/^NOT_FOUND .*\/no\/such\/file/)
  })

  test('a cancelled call or one past its deadline stops its process in the guest, on either transport', async () => {
    const { agentClient } = await import('./agent-client.js')
    const { VmDirectory } = await import('../supervisor/vm-directory.js')
    const { Metadata } = await import('@grpc/grpc-js')
    const agent = agentClient(new VmDirectory(vm.name))
    const start = (marker: string) => startMessage({ argv: ['sleep', marker] })
    try {
      for (const transport of ['lane', 'grpc']) {
        process.env.VMCTL_AGENT_TRANSPORT = transport
        const cancelled = agent.exec(new Metadata(), {})
        const late = agent.exec(new Metadata(), { deadline: new Date(Date.now() + 1_500) })
        const errors = [cancelled, late].map((call) => new Promise((resolve) => call.on('error', resolve)))
        cancelled.write(start('301'))
        late.write(start('302'))
        await new Promise((resolve) => cancelled.once('data', resolve))
        cancelled.cancel()
        expect(await errors[0]).toMatchObject({ code: 1 }) // CANCELLED
        expect(await errors[1]).toMatchObject({ code: 4 }) // DEADLINE_EXCEEDED
        delete process.env.VMCTL_AGENT_TRANSPORT
        const { pollUntil } = await import('../util/timing.js')
        const gone = await pollUntil(
          async () => (await vm.exec('pgrep -f "sleep 30[12]"', { reject: false })).exitCode === 1,
          { timeoutMs: 5_000, everyMs: 100 },
        )
        expect(gone, `${transport}: the cancelled processes killed`).toBe(true)
      }
    } finally {
      delete process.env.VMCTL_AGENT_TRANSPORT
      agent.close()
    }
  })

  test('an exec that wants no pid is answered without ExecStarted, on either transport; one that does gets it', async () => {
    const { agentClient } = await import('./agent-client.js')
    const { VmDirectory } = await import('../supervisor/vm-directory.js')
    const { Metadata } = await import('@grpc/grpc-js')
    const agent = agentClient(new VmDirectory(vm.name))
    const kinds = (noStarted: boolean) =>
      new Promise<string[]>((resolve, reject) => {
        const seen: string[] = []
        const call = agent.exec(new Metadata(), {})
        call.on('data', (response: { kind?: { $case: string } }) => seen.push(response.kind?.$case ?? ''))
        call.on('error', reject)
        call.on('end', () => resolve(seen))
        const value = {
          argv: ['echo', 'hi'],
          shell: '',
          env: {},
          cwd: '/',
          user: '',
          stdin: false,
          timeoutMs: 0,
        }
        call.write({ kind: { $case: 'start', value: { ...value, noStarted } } })
        call.end()
      })
    try {
      for (const transport of ['lane', 'grpc']) {
        process.env.VMCTL_AGENT_TRANSPORT = transport
        expect(await kinds(true), transport).toEqual(['stdout', 'exit'])
        expect(await kinds(false), transport).toEqual(['started', 'stdout', 'exit'])
      }
    } finally {
      delete process.env.VMCTL_AGENT_TRANSPORT
      agent.close()
    }
    // vm.exec() asks for none, vm.spawn() still has its pid.
    expect((await vm.exec(['echo', 'ok'])).stdout).toBe('ok\n')
    const background = vm.spawn(['sleep', '0.2'])
    expect(await background.pid).toBeGreaterThan(1)
    expect((await background.wait()).exitCode).toBe(0)
  })

  test('when the agent process dies a pending call fails at once, and later calls work', async () => {
    const pending = vm.exec('sleep 60')
    pending.catch(() => {})
    await new Promise((r) => setTimeout(r, 300))
    const killedAt = Date.now()
    await vm.exec('kill -KILL $(pidof vmctl-agent)', { reject: false }).catch(() => {})
    const error = await pending.catch((e: unknown) => e)
    // At once: not when `sleep 60` would have ended, nor at a call deadline. The bound holds the
    // kill's own exec, which a loaded TCG host can stretch past a second or two.
    expect(Date.now() - killedAt).toBeLessThan(10_000)
    expect(error).toBeInstanceOf(AgentError)
    expect((error as Error).message).toMatch(/agent process died/)
    // The very next call works: it waits for the restarted agent (agent-restart.vm.test.ts repeats it).
    expect((await vm.exec('echo back')).stdout).toBe('back\n')
  })

  // Its own VM: shutting down the file's VM would make every test after it depend on running first.
  test('shutdown ends the VM and cleans up', async () => {
    const own = await VM.up()
    const name = own.name
    await own.shutdown()
    await expect(own.exec('true')).rejects.toBeInstanceOf(VmExitedError)
    await eventually(() => !vmDirectoryExists(name), 5_000, 'VM directory removed')
  })
})
