import { execFileSync } from 'node:child_process'

/**
 * After the whole run: no QEMU that a test started may still be running. A leak fails the run (and
 * is killed, so it does not outlive CI either).
 */
export async function teardown(): Promise<void> {
  let pids: string[] = []
  try {
    pids = execFileSync('pgrep', ['-f', 'qemu-system.*vmctl_hostname='], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
  } catch {}
  if (pids.length === 0) return
  execFileSync('kill', ['-9', ...pids])
  throw new Error(`the test run leaked ${pids.length} QEMU process(es): ${pids.join(', ')} (killed now)`)
}
