import { once } from 'node:events'
import type { MuxSession } from '@vmctl/agent'
import { agentClient } from '../vm/agent-client.js'
import { WARM_UP_PROGRAM } from './agent-warm-up.js'
import type { Deadline } from './boot-deadline.js'
import { execToExit } from './guest-exec.js'
import type { VmDirectory } from './vm-directory.js'

/** A rehearsal that has not answered by then is dropped (it never holds anything up). */
const REHEARSAL_BUDGET_MS = 10_000

/**
 * A restored VM's first command, rehearsed while its root is mounted. After a restore, guest-setup
 * mounts the root on one vCPU (~250 ms after `cont` under TCG) while the agent, awake ~150 ms after
 * `cont` since templates are saved with nothing in flight, waits on the other. Everything a first
 * command runs is then translated by QEMU anew (its translation cache starts empty on every
 * restore): the agent's call lane, its exec service and V8's code for them, the spawner, the
 * kernel's vfork, execve and exit. Run once meanwhile, through the agent as a test's command is,
 * that translation is done on the idle vCPU (QEMU's translations serve every vCPU), and the test's
 * first command pays only for what is its own: its binary, its loader and libc, read from the root.
 *
 * What runs: the template warm-up's 129-byte program that exits 0 (agent-warm-up.ts), left where
 * the root is mounted over it, so no command of the VM's ever sees it; one that starts after the
 * root is mounted finds no such file (exit 127), as harmless. Nothing waits for it: "ready" is
 * still the agent and the root (readiness.ts), and a rehearsal that fails is forgotten. A root
 * mounted by the time the agent answers (`rootMounted`) leaves nothing to overlap: no rehearsal
 * then. Only for a VM with a root to mount. A boot that ends before its agent answers (destroyed,
 * failed, past its deadline) takes the wait for the agent with it.
 */
export function rehearseFirstCommand(
  directory: Pick<VmDirectory, 'agentSocket' | 'rawSocket'>,
  mux: MuxSession,
  rootMounted: () => boolean,
  boot: { deadline: Deadline; ended: Promise<unknown> },
  log: (format: string, ...args: unknown[]) => void,
): void {
  const run = async () => {
    if (!mux.isReady) {
      // A timer of its own, not AbortSignal.timeout() under AbortSignal.any(): Node 20 holds the
      // signals given to any() weakly, so a collected timeout signal would never fire.
      const gone = new AbortController()
      const deadline = setTimeout(
        () => gone.abort(boot.deadline.expired()),
        Math.max(1, Math.round(boot.deadline.at - performance.now())),
      )
      boot.ended.then(
        () => gone.abort(new Error('the boot ended before the agent answered')),
        (error: Error) => gone.abort(error),
      )
      try {
        await once(mux, 'ready', { signal: gone.signal })
      } catch {
        throw gone.signal.reason
      } finally {
        clearTimeout(deadline)
      }
    }
    if (rootMounted())
      return log('first command not rehearsed: the root was mounted before the agent answered')
    const agent = agentClient(directory)
    const started = performance.now()
    try {
      const exit = await execToExit(agent, [WARM_UP_PROGRAM], new Date(Date.now() + REHEARSAL_BUDGET_MS))
      log(
        'first command rehearsed in %d ms (exit %d)',
        Math.round(performance.now() - started),
        exit.exitCode,
      )
    } finally {
      agent.close()
    }
  }
  run().catch((error: Error) => log('first command rehearsal dropped: %s', error.message))
}
