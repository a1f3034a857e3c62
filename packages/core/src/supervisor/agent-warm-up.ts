import { Metadata } from '@grpc/grpc-js'
import type { AgentClient } from '@vmctl/agent'
import { agentClient, grpcAgentClient } from '../vm/agent-client.js'
import { exitZeroProgram } from './exit-zero-program.js'
import { execToExit } from './guest-exec.js'
import type { VmDirectory } from './vm-directory.js'

/**
 * Rounds of calls. V8 compiles a function on its first call; one round and three measured the
 * same within noise (docs/performance.md), two leave room for the few that tier up later.
 */
const WARM_UP_ROUNDS = 2
/** Far more than the warm-up takes even on a loaded host: one that needs longer is stuck. */
const WARM_UP_BUDGET_MS = 30_000
/**
 * Where the file round trip writes. With a root to mount this is inside the empty mount point,
 * which the root is later mounted over: no restored VM ever sees it. In a minimal-root VM it is
 * the agent's own runtime directory, and the last exec removes it.
 */
const WARM_UP_FILE = '/run/vmctl/warm-up'
/**
 * A command that starts: a 129-byte static program that exits 0 (exit-zero-program.ts), pushed
 * next to the file above and run by its path. Without a root mounted, `true` cannot start, so the
 * agent's path after a command started (its pipes opened, output read, the exit) was compiled by
 * V8 only in each restored VM, on its first command (docs/first-command-prefetch.md).
 */
export const WARM_UP_PROGRAM = '/run/vmctl/warm-up-program'
/** A command's stdin in the warm-up: a line, then its end. */
const WARM_UP_INPUT = Buffer.from('warm\n')

/**
 * Runs the calls a test makes first (exec, a file each way, info) through the agent of a VM
 * whose template is about to be saved, so that every VM restored from it starts with them done.
 *
 * V8 compiles the agent's JavaScript lazily, function by function, on first use, and the code it
 * compiled lives in the guest's RAM, which the template saves. Without this, every restored VM
 * compiled grpc-js's server-side call path, HTTP/2 stream handling, the exec service and
 * child_process's spawn again, in a guest where every instruction of the compiler is emulated.
 * What it does not carry over is QEMU's translation of guest code, which lives on the host.
 *
 * The root is not mounted yet (it never is in a template), so in a VM with one `true` fails to
 * start inside the empty mount point (the agent's path of a command that could not start), and
 * WARM_UP_PROGRAM, which needs no root, starts and exits (the path every command takes).
 *
 * `rootMounted`: the VM mounts a root over the place its commands run in (the host's, an image's),
 * which hides WARM_UP_PROGRAM from every restored VM; it is kept there for the rehearsal of a
 * restored VM's first command (first-command-rehearsal.ts). Without one it is removed.
 *
 * Only a shortcut: a warm-up that fails or takes longer than WARM_UP_BUDGET_MS is given up and
 * the template saved as it is. Resolves with a line for the supervisor's log.
 */
export async function warmUpAgent(
  directory: Pick<VmDirectory, 'agentSocket' | 'rawSocket'>,
  deadline: number,
  rootMounted = false,
): Promise<string> {
  const started = performance.now()
  const until = Math.min(deadline, started + WARM_UP_BUDGET_MS)
  // For measuring only (docs/performance.md): the template key does not say how it was warmed, so
  // an A/B run gives each side its own VMCTL_CACHE_DIR.
  const rounds = Number(process.env.VMCTL_WARM_UP_ROUNDS ?? WARM_UP_ROUNDS)
  // Both transports (the call lane and gRPC, see vm/lane-client.ts): a VM serves either, and an
  // A/B of the two in one VM should not find one of them cold.
  const agents = [agentClient(directory), grpcAgentClient(directory)]
  const callDeadline = () => new Date(Date.now() + Math.max(1, until - performance.now()))
  // VMCTL_WARM_UP_STARTED=0: for measuring only, as the rounds above.
  const program = process.env.VMCTL_WARM_UP_STARTED === '0' ? undefined : exitZeroProgram()
  let notStarted = ''
  try {
    for (let round = 0; round < rounds; round++) {
      for (const agent of agents) {
        await execToExit(agent, ['true'], callDeadline())
        if (program) {
          await pushFile(agent, WARM_UP_PROGRAM, program, callDeadline(), 0o700)
          const exit = await execToExit(agent, [WARM_UP_PROGRAM], callDeadline())
          if (exit.exitCode !== 0)
            notStarted = `; its command that starts exited ${exit.exitCode} (${exit.stderr.trim() || 'no message'})`
          // And with an input, as `vmctl run` sends its stdin when that is not a terminal (a CI
          // step, a script): the agent's stdin path, compiled here rather than on a restored VM's
          // first such command (+~50 ms there under TCG, docs/first-command.md).
          if (process.env.VMCTL_WARM_UP_INPUT !== '0')
            await execToExit(agent, [WARM_UP_PROGRAM], callDeadline(), { input: WARM_UP_INPUT })
        }
        await new Promise<void>((resolve, reject) =>
          agent.info({}, new Metadata(), { deadline: callDeadline() }, (error) =>
            error ? reject(error) : resolve(),
          ),
        )
        await pushFile(agent, WARM_UP_FILE, Buffer.from('warm\n'), callDeadline())
        await pullFile(agent, WARM_UP_FILE, callDeadline())
      }
    }
    if (rounds > 0)
      await execToExit(
        agents[0]!,
        ['rm', '-f', WARM_UP_FILE, ...(program && !rootMounted ? [WARM_UP_PROGRAM] : [])],
        callDeadline(),
      )
  } catch (error) {
    return `agent warm-up given up after ${Math.round(performance.now() - started)} ms (${(error as Error).message}); the template is saved without it`
  } finally {
    for (const agent of agents) agent.close()
  }
  return `agent warmed up in ${Math.round(performance.now() - started)} ms (${rounds} rounds)${notStarted}`
}

/** A small file into the guest, the way vm.writeFile() sends it. */
function pushFile(
  agent: AgentClient,
  path: string,
  data: Buffer,
  deadline: Date,
  mode = 0o600,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const call = agent.push(new Metadata(), { deadline }, (error) => (error ? reject(error) : resolve()))
    const header = { path, mode, owner: '', parents: true, directory: false }
    call.write({ kind: { $case: 'header', value: header } })
    call.write({ kind: { $case: 'data', value: data } })
    call.end()
  })
}

/** A guest file read to its end, the way vm.readFile() reads it. */
function pullFile(agent: AgentClient, path: string, deadline: Date): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const call = agent.pull({ path, directory: false }, new Metadata(), { deadline })
    call.on('data', () => {})
    call.on('end', resolve)
    call.on('error', reject)
  })
}
