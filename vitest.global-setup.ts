import { execFileSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { claimRunDir, sweepDeadRunDirs } from './packages/core/src/test-support/run-dirs.js'

let runDir: string | undefined

/**
 * Each run gets its own runtime directory (inherited by the workers and every vmctl they spawn), so
 * the leak check below sees only this run's VMs, never those of a run next to it. A killed run
 * never reaches its teardown: the directories such runs left behind go first, those of runs side
 * by side stay (test-support/run-dirs.ts says how a dead one is told).
 */
export function setup(): void {
  if (process.env.VMCTL_RUNTIME_DIR) return
  for (const dir of sweepDeadRunDirs(tmpdir()))
    console.log(`removed ${dir}, left by a test run that was killed`)
  runDir = claimRunDir(tmpdir())
  process.env.VMCTL_RUNTIME_DIR = runDir
}

/**
 * After the whole run: no QEMU that a test started may still be running. A leak fails the run (and
 * is killed, so it does not outlive CI either).
 */
export async function teardown(): Promise<void> {
  const scope = process.env.VMCTL_RUNTIME_DIR
  const running = () => {
    try {
      return execFileSync('pgrep', ['-f', `qemu-system.*${scope ?? 'vmctl_hostname='}`], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean)
    } catch {
      return []
    }
  }
  // A worker killed at the end leaves a spare supervisor's QEMU (prestarted-qemu.ts) to go once
  // that supervisor sees its stdin end, after it has loaded: a second at most, not a leak (3 s allowed).
  let pids = running()
  for (let waited = 0; pids.length > 0 && waited < 3_000; waited += 200) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    pids = running()
  }
  if (runDir) rmSync(runDir, { recursive: true, force: true })
  if (pids.length === 0) return
  execFileSync('kill', ['-9', ...pids])
  throw new Error(`the test run leaked ${pids.length} QEMU process(es): ${pids.join(', ')} (killed now)`)
}
