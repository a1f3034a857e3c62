import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { VM } from '../index.js'
import { agentClient } from '../vm/agent-client.js'
import { execToExit, runShellInGuest } from './guest-exec.js'
import { VmDirectory } from './vm-directory.js'

// The supervisor's own commands in the guest (the agent warm-up, a network rejoin) go through
// guest-exec.ts over the agent's raw client, not a VM handle.
describe('guest-exec: the supervisor runs a command in the guest to its exit (vm)', () => {
  let vm: VM
  let agent: ReturnType<typeof agentClient>
  const soon = () => new Date(Date.now() + 30_000)
  beforeAll(async () => {
    vm = await VM.up()
    agent = agentClient(new VmDirectory(vm.name))
  })
  afterAll(async () => {
    agent?.close()
    await vm?.destroy()
  })

  test('an argv or a shell line, to its exit status and stderr, whatever the status', async () => {
    expect(await execToExit(agent, ['true'], soon())).toEqual({
      exitCode: 0,
      signal: '',
      stderr: '',
    })
    expect(await execToExit(agent, [], soon(), { shell: 'echo out; echo boom >&2; exit 3' })).toEqual({
      exitCode: 3,
      signal: '',
      stderr: 'boom\n',
    })
  })

  test("an input is the command's stdin, then its end (an empty one too)", async () => {
    const read = 'read -r line && test "$line" = warm && ! read -r more && echo "[$more]" >&2'
    expect(await execToExit(agent, [], soon(), { shell: read, input: Buffer.from('warm\n') })).toEqual({
      exitCode: 0,
      signal: '',
      stderr: '[]\n',
    })
    // An empty input still ends: the command reads EOF at once instead of waiting.
    expect((await execToExit(agent, [], soon(), { shell: 'cat', input: Buffer.alloc(0) })).exitCode).toBe(0)
  })

  test('a shell line that must succeed rejects with its status and stderr, and resolves when it does', async () => {
    await expect(runShellInGuest(agent, 'echo no such thing >&2; exit 7', 30_000)).rejects.toThrow(
      'exit 7: no such thing',
    )
    await expect(runShellInGuest(agent, 'true', 30_000)).resolves.toBeUndefined()
  })

  test('the agent kills a command past its timeout, and the exit says by which signal', async () => {
    const exit = await execToExit(agent, [], soon(), { shell: 'sleep 30', timeoutMs: 300 })
    expect(exit.signal).not.toBe('')
  })
})
