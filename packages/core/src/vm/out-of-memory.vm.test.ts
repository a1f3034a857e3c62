import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { ExecError } from './exec-result.js'
import { VM } from './vm.js'

/**
 * A command the guest kernel's OOM killer ends dies of SIGKILL (or its shell exits 137) with
 * nothing but "Killed" on its stderr. vmctl says what happened and the fix: the result's
 * `oomKills` and the ExecError's message name the process. The limit hit here is a memory
 * cgroup's (32 MiB, reached in about a second); the guest's own memory (1 GiB by default) takes
 * ~30 s of TCG to fill, and the kernel's line for it differs only in its prefix (oom-kills.test.ts).
 */
let vm: VM
beforeAll(async () => {
  vm = await VM.up()
})
afterAll(async () => {
  await vm?.destroy()
})

/** A shell that puts itself in a memory cgroup of `limit`, then runs `command` there. */
function inMemoryCgroup(name: string, limit: string, command: string): string {
  const dir = `/sys/fs/cgroup/${name}`
  return `mkdir -p ${dir} && echo ${limit} > ${dir}/memory.max && echo $$ > ${dir}/cgroup.procs && ${command}`
}

describe('a command killed for memory (vm)', () => {
  test("the agent and its spawner are the OOM killer's last choice; a command is an ordinary process", async () => {
    // The command is sh, its parent the spawner; the agent is the spawner's parent.
    const adjust = await vm.exec(
      'cat /proc/self/oom_score_adj /proc/$PPID/oom_score_adj; cat /proc/$(cut -d" " -f4 /proc/$PPID/stat)/oom_score_adj; cat /proc/$PPID/comm',
    )
    expect(adjust.stdout).toBe('0\n-500\n-500\nvmctl-spawner\n')
  })

  test('a failing command that nothing killed has no OOM kills', async () => {
    const result = await vm.exec('exit 3', { reject: false })
    expect(result.exitCode).toBe(3)
    expect(result.oomKills).toEqual([])
  })

  test('the OOM killer hitting a command: its result and its error name the process and the fix', async () => {
    // `tail` keeps a line in memory until its end: from /dev/zero, that is everything.
    const hog = inMemoryCgroup('oom-a', '32M', 'head -c 200M /dev/zero | tail')
    const result = await vm.exec(hog, { reject: false })
    expect(result.exitCode).toBe(137) // the shell's report of its SIGKILLed child
    expect(result.oomKills).toEqual([{ pid: expect.any(Number), command: 'tail', cgroup: true }])

    const error = await vm
      .exec(inMemoryCgroup('oom-b', '32M', 'head -c 200M /dev/zero | tail'))
      .catch((e) => e)
    expect(error).toBeInstanceOf(ExecError)
    expect((error as ExecError).oomKills).toHaveLength(1)
    expect((error as ExecError).oomKills[0]!.pid).not.toBe(result.oomKills[0]!.pid)
    expect((error as ExecError).shortMessage).toMatch(
      /failed with exit code 137 in VM .*; while it ran, the kernel's OOM killer killed tail \(pid \d+\) at a memory cgroup's limit\. Fix: raise that cgroup's memory\.max$/,
    )

    // Right after, a command that fails on its own is not blamed on the kill before it.
    const next = await vm.exec('exit 1', { reject: false })
    expect(next.oomKills).toEqual([])
    // A process's wait() has them too.
    const spawned = vm.spawn(inMemoryCgroup('oom-c', '32M', 'exec tail /dev/zero'))
    const waited = await spawned.wait()
    expect(waited.signal).toBe('SIGKILL')
    expect(waited.oomKills.map((kill) => kill.command)).toEqual(['tail'])
  })
})
